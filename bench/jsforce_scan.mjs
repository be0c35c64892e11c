// jsforce, unmodified, reading every record of a query with autoFetch, as
// its users page through a large object: prints the records and seconds.
// Usage: node bench/jsforce_scan.mjs BASE_URL SOQL
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.resolve(import.meta.dirname, '../sfsim/clients/node/package.json'));
const jsforce = require('jsforce');
const [baseUrl, soql] = process.argv.slice(2);

const conn = new jsforce.Connection({
  oauth2: { loginUrl: baseUrl, clientId: 'sfsim-client-id', clientSecret: 'sfsim-client-secret', redirectUri: 'http://localhost/callback' },
  version: '62.0',
});
await conn.login('admin@sfsim.example', 'sfsim-passwordSFSIMTOKEN');
const started = process.hrtime.bigint();
let records = 0;
await new Promise((resolve, reject) => {
  conn.query(soql)
    .on('record', () => { records += 1; })
    .on('end', resolve)
    .on('error', reject)
    .run({ autoFetch: true, maxFetch: Number.MAX_SAFE_INTEGER });
});
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(`${records} ${seconds.toFixed(3)}`);
