// gen.js makes a delivery signed by Node.js's crypto the way the seed's
// example implies Reap signs: RSA-SHA512 over JSON.stringify of the payload,
// base64. It writes a fresh key's public half (public.pem; the private half
// is discarded), a pretty-printed body with what JSON.stringify rewrites
// (escapes, numbers, a repeated key) and two signatures: over the compact
// form (signature-compact.txt) and over the body as written
// (signature-raw.txt). Regenerate with:
//
//	cd testdata/node && node gen.js
'use strict';

const crypto = require('crypto');
const fs = require('fs');

const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});

const body = `{
  "eventType": "account_status_change",
  "eventName": "ACCOUNT_REJECTED",
  "data": {
    "eventId": "node-0001",
    "message": "R\\u00e9vision requise \\u2014 see https:\\/\\/example.com\\/kyc?a=1&b=<2>",
    "entityId": "acct-\\u0031\\u0032\\u0033",
    "status": "PENDING",
    "status": "REJECTED",
    "timestamp": "2025-06-02T08:30:15.250Z",
    "reviewRejectType": "RETRY",
    "rejectLabels": ["BLURRY_IMAGE", "\\ud83d\\udcf7 CAMERA"],
    "attempt": 2.0,
    "score": 1E2,
    "limits": {"10": "ten", "2": "two", "b": "bee", "a": "ay"}
  }
}
`;

function sign(text) {
  const signer = crypto.createSign('RSA-SHA512');
  signer.update(text);
  signer.end();
  return signer.sign(privateKey, 'base64');
}

const compact = JSON.stringify(JSON.parse(body));
fs.writeFileSync('public.pem', publicKey);
fs.writeFileSync('body.json', body);
fs.writeFileSync('compact.json', compact);
fs.writeFileSync('signature-compact.txt', sign(compact) + '\n');
fs.writeFileSync('signature-raw.txt', sign(body) + '\n');
