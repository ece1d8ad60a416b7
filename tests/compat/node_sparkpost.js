// Drives Sluice with node-sparkpost 2.1.4, unchanged but for the origin.
//
// Run by tests/compatibility.rs with SLUICE_ORIGIN (https://127.0.0.1:PORT), SLUICE_KEY and
// NODE_EXTRA_CA_CERTS (the test's self-signed certificate). Prints one JSON object with what
// each call returned.
'use strict';

const SparkPost = require('sparkpost');

const client = new SparkPost(process.env.SLUICE_KEY, { origin: process.env.SLUICE_ORIGIN });

async function main() {
  const out = {};
  out.send = await client.transmissions.send({
    campaign_id: 'node-compat',
    substitution_data: { shop: 'the shop' },
    recipients: [
      { address: { email: 'nia@example.test', name: 'Nia' }, substitution_data: { first: 'Nia' } },
      { address: 'omar@example.test', substitution_data: { first: 'Omar' } },
    ],
    content: {
      from: { email: 'shop@sender.test', name: 'Shop' },
      subject: 'Hi {{first}}',
      text: 'Dear {{first}}, from {{shop}}.',
      html: '<p>Dear {{first}}</p>',
    },
  }, { num_rcpt_errors: 3 });

  out.partial = await client.transmissions.send({
    recipients: [{ address: 'pat@example.test' }, { address: 'not-an-address' }],
    content: { from: 'shop@sender.test', subject: 'partial', text: 'one of two' },
  }, { num_rcpt_errors: 1 });

  try {
    await client.transmissions.send({ recipients: [], content: {} });
    out.empty = 'accepted';
  } catch (error) {
    out.empty = { statusCode: error.statusCode, errors: error.errors };
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
