//! A small authoritative DNS server on loopback UDP, so tests exercise real MX resolution:
//! preference order, null MX, implicit MX and missing domains.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX};
use hickory_proto::rr::{Name, RData, Record};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Records to serve, keyed by lower-case name without the trailing dot.
#[derive(Default)]
pub struct Zone {
    records: HashMap<String, Vec<RData>>,
}

fn name(text: &str) -> Name {
    Name::from_str(&format!("{}.", text.trim_end_matches('.'))).expect("a DNS name")
}

impl Zone {
    /// An empty zone: every name is NXDOMAIN.
    pub fn new() -> Zone {
        Zone::default()
    }

    /// An MX record for `domain`.
    pub fn mx(mut self, domain: &str, preference: u16, host: &str) -> Zone {
        let rdata = RData::MX(MX::new(preference, name(host)));
        self.records
            .entry(domain.to_ascii_lowercase())
            .or_default()
            .push(rdata);
        self
    }

    /// A null MX (RFC 7505): the domain accepts no mail.
    pub fn null_mx(mut self, domain: &str) -> Zone {
        let rdata = RData::MX(MX::new(0, Name::root()));
        self.records
            .entry(domain.to_ascii_lowercase())
            .or_default()
            .push(rdata);
        self
    }

    /// An A record.
    pub fn a(mut self, host: &str, ip: Ipv4Addr) -> Zone {
        let rdata = RData::A(A(ip));
        self.records
            .entry(host.to_ascii_lowercase())
            .or_default()
            .push(rdata);
        self
    }

    /// An AAAA record.
    pub fn aaaa(mut self, host: &str, ip: Ipv6Addr) -> Zone {
        let rdata = RData::AAAA(AAAA(ip));
        self.records
            .entry(host.to_ascii_lowercase())
            .or_default()
            .push(rdata);
        self
    }

    fn answer(&self, query: &Message) -> Message {
        let mut response = Message::response(query.metadata.id, query.metadata.op_code);
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        let Some(question) = query.queries.first() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return response;
        };
        response.add_query(question.clone());
        let key = question
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let Some(records) = self.records.get(&key) else {
            response.metadata.response_code = ResponseCode::NXDomain;
            return response;
        };
        for rdata in records {
            if rdata.record_type() == question.query_type() {
                let record = Record::from_rdata(question.name().clone(), 60, rdata.clone());
                response.add_answer(record);
            }
        }
        response
    }
}

/// A running DNS server; dropping it stops it.
pub struct DnsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DnsServer {
    /// Serves `zone` on a free UDP port of 127.0.0.1.
    pub async fn start(zone: Zone) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("binding the DNS socket");
        let addr = socket.local_addr().expect("DNS socket address");
        let zone = Arc::new(zone);
        let task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buffer).await else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buffer[..len]) else {
                    continue;
                };
                if let Ok(bytes) = zone.answer(&query).to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        DnsServer { addr, task }
    }

    /// The `ip:port` to put in `[dns] nameservers`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
