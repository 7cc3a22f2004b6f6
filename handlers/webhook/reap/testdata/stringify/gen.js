// gen.js writes vectors.json: for each input below, what Node.js's
// JSON.stringify(JSON.parse(input)) returns (null when JSON.parse throws).
// reap's CompactJSON must return the same bytes. Regenerate with:
//
//	node testdata/stringify/gen.js > testdata/stringify/vectors.json
'use strict';

const inputs = [
  // Whitespace only: what json.Compact would also do.
  '{ "eventType" : "account_status_change" ,\n  "data" : { "status" : "APPROVED" } }\n',
  '\t[ 1 ,\r\n 2 ]  ',
  '{}', '[]', '{ }', '[ ]', 'true', 'false', 'null', '"s"', '0',

  // Numbers: re-serialized as doubles, the JavaScript way.
  '[1.0, 1.50, 1e2, 1E2, 1e+2, 1E-2, 0.10, -0, -0.0, 0e10, 100, 123.456e1]',
  '[1e21, 1e20, 123456789012345680000, 1.5e21, 1e-6, 1e-7, 0.000001, 0.0000001, 1.5e-7, 0.00000123]',
  '[12345678901234567890, 9007199254740993, 9007199254740992, -9007199254740993]',
  '[0.1, 0.2, 0.30000000000000004, 3.141592653589793238462643383279, 2.5e-324, 2.4e-324, 5e-324, 1.7976931348623157e308]',
  '[1e400, -1e400, 1e-400, -1e-400]',
  '[1700000000000, 1.7e12, 1700000000000.0, 17e11]',
  '[5e-7, 123e-20, 1e100, 1.2345e-5, 100e-8]',

  // Strings: unescaped and re-escaped minimally.
  '["\\u00e9", "é", "\\/", "/", "\\u0041", "<>&", "\\u003c\\u003e\\u0026"]',
  '["\\b\\f\\n\\r\\t", "\\u0008\\u000C\\u000a\\u000D\\u0009", "\\u0000\\u001F\\u001f\\u007F\\u0080"]',
  '["\\"", "\\\\", "\\u0022\\u005C"]',
  '["\\u2028\\u2029", "\u2028\u2029", "\\uFEFF", "\\ufffd"]',
  '["\\ud83d\\ude00", "😀", "\\uD83D\\uDE00", "\\ud83d", "\\ude00", "\\ude00\\ud83d", "\\ud83d\\ud83d\\ude00", "a\\ud83dz", "\\ud83d\\u0041"]',
  '["日本語", "\\u65e5\\u672c\\u8a9e", "Ünïcödé — ok"]',

  // Objects: duplicate keys, array-index keys first.
  '{"a":1,"b":2,"a":3}',
  '{"b":1,"a":2,"b":{"x":1},"c":3,"a":4}',
  '{"b":1,"2":2,"1":3,"a":4,"0":5}',
  '{"01":1,"1":2,"-1":3,"1.0":4,"4294967294":5,"4294967295":6,"10":7,"9":8}',
  '{"\\u0031":"one","1":"uno"}',
  '{"__proto__":{"x":1},"constructor":2,"toString":3}',
  '{"":1,"":2}',
  '{"a":{"z":1,"y":2,"z":3},"b":[{"1":1,"0":0},{"k":1,"k":2}]}',
  '{"data":{"eventId":"e1","entityId":"u1","status":"APPROVED","data":{"eventId":"nested"}},"eventType":"account_status_change"}',

  // What JSON.parse rejects.
  '', ' ', '{', '{"a":1,}', '[1,]', '01', '1.', '.5', '+1', '-', '1e', 'NaN', 'Infinity', "'s'",
  '"\\x41"', '"\\u12"', '"a\nb"', '{"a" 1}', '{a:1}', '[1 2]', 'tru', 'nul', '1 2', '"unterminated',
  '\ufeff{}', '{"a":1}x',
];

const vectors = inputs.map((input) => {
  let output = null;
  try {
    output = JSON.stringify(JSON.parse(input));
  } catch (e) {
    output = null;
  }
  return { input, output };
});
process.stdout.write(JSON.stringify(vectors, null, 1) + '\n');
