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

  out.attachment = await client.transmissions.send({
    recipients: [{ address: 'nfiles@example.test' }],
    content: {
      from: 'shop@sender.test',
      subject: 'node report',
      text: 'the report is attached',
      attachments: [{
        name: 'report.csv',
        type: 'text/csv; charset="utf-8"',
        data: Buffer.from('a,b\r\n1,2\r\n').toString('base64'),
      }],
    },
  });

  const gif = Buffer.concat([Buffer.from('GIF89a'), Buffer.from([...Array(32).keys()])]);
  out.inlineImage = await client.transmissions.send({
    recipients: [{ address: 'nimage@example.test' }],
    content: {
      from: 'shop@sender.test',
      subject: 'node banner',
      html: '<img src="cid:banner.gif">',
      inline_images: [{ name: 'banner.gif', type: 'image/gif', data: gif.toString('base64') }],
    },
  });

  out.rfc822 = await client.transmissions.send({
    recipients: [{ address: { email: 'nraw@example.test', name: 'Nora' }, substitution_data: { first: 'Nora' } }],
    content: {
      email_rfc822: 'From: shop@sender.test\r\nTo: "{{address.name}}" <{{address.email}}>\r\n'
        + 'Subject: Raw {{first}}\r\nContent-Type: text/html\r\n\r\n<p>Hi {{first}}</p>\r\n',
    },
  });

  await client.templates.create({
    id: 'node-welcome',
    name: 'Node welcome',
    content: { from: 'shop@sender.test', subject: 'Hey {{first}}', text: 'Draft {{first}}' },
  });
  out.templateDraft = await client.templates.get('node-welcome', { draft: true });
  await client.templates.update('node-welcome', {
    content: { from: 'shop@sender.test', subject: 'Hey {{first}}', html: '<b>Live {{first}}</b>' },
  });
  await client.templates.update('node-welcome', { published: true });
  out.templatePublished = await client.templates.get('node-welcome', { draft: false });
  out.templatePreview = await client.templates.preview('node-welcome', {
    substitution_data: { first: 'Ines' },
  });
  out.templateList = await client.templates.list();
  out.templateSend = await client.transmissions.send({
    recipients: [{ address: 'ivo@example.test', substitution_data: { first: 'Ivo' } }],
    content: { template_id: 'node-welcome' },
  });
  await client.templates.create({
    id: 'node-scratch', name: 'Scratch', content: { from: 'shop@sender.test', subject: 's', text: 't' },
  });
  out.templateDelete = await client.templates.delete('node-scratch');
  try {
    await client.templates.get('node-scratch');
    out.templateAfterDelete = 'found';
  } catch (error) {
    out.templateAfterDelete = { statusCode: error.statusCode };
  }

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
