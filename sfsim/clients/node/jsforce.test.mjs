// jsforce, used unmodified as its users use it, against sfsim.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import jsforce from 'jsforce';

const repo = path.resolve(import.meta.dirname, '../../..');
const binary = process.env.SFSIM_BIN ?? path.join(repo, 'target/debug/sfsim');
const oauth2 = () => ({ loginUrl: baseUrl, clientId: 'sfsim-client-id', clientSecret: 'sfsim-client-secret', redirectUri: 'http://localhost/callback' });
let sim;
let baseUrl;

before(async () => {
  sim = spawn(binary, ['--listen', '127.0.0.1:0', '--records', 'Contact=4500'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: sim.stdout });
  baseUrl = await new Promise((resolve) => lines.once('line', resolve));
});

after(() => sim.kill());

const control = async (method, route, body) => {
  const r = await fetch(`${baseUrl}/__sim/${route}`, { method, body: body && JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
  assert.ok(r.ok, `control ${route}: ${r.status}`);
  const text = await r.text();
  return text ? JSON.parse(text) : null;
};

const login = async () => {
  const conn = new jsforce.Connection({ oauth2: oauth2(), version: '62.0' });
  await conn.login('admin@sfsim.example', 'sfsim-passwordSFSIMTOKEN');
  return conn;
};

test('OAuth password flow logs in', async () => {
  const conn = await login();
  assert.equal(conn.instanceUrl, baseUrl);
  assert.ok(conn.accessToken.length > 20);
  assert.equal(conn.userInfo.organizationId.slice(0, 3), '00D');
});

test('wrong password is refused', async () => {
  const conn = new jsforce.Connection({ oauth2: oauth2(), version: '62.0' });
  await assert.rejects(conn.login('admin@sfsim.example', 'wrong'), /authentication failure/);
});

test('query with autoFetch reads every page', async () => {
  const conn = await login();
  const result = await conn.query('SELECT Id, Email FROM Contact').run({ autoFetch: true, maxFetch: 10000 });
  assert.equal(result.totalSize, 4500);
  assert.equal(result.records.length, 4500);
  assert.equal(new Set(result.records.map((r) => r.Id)).size, 4500);
});

test('sobject CRUD', async () => {
  const conn = await login();
  const created = await conn.sobject('Contact').create({ LastName: 'Js', FirstName: 'Force', Email: 'js.force@example.net' });
  assert.equal(created.success, true);
  const got = await conn.sobject('Contact').retrieve(created.id);
  assert.equal(got.Name, 'Force Js');
  await conn.sobject('Contact').update({ Id: created.id, Title: 'Node' });
  assert.equal((await conn.sobject('Contact').retrieve(created.id)).Title, 'Node');
  const removed = await conn.sobject('Contact').destroy(created.id);
  assert.equal(removed.success, true);
  await assert.rejects(conn.sobject('Contact').retrieve(created.id), /NOT_FOUND|does not exist/);
});

test('collections create, retrieve, update and destroy many records in one call each', async () => {
  const conn = await login();
  const records = Array.from({ length: 5 }, (_, i) => ({ LastName: `Many ${i}` }));
  const created = await conn.sobject('Contact').create(records, { allOrNone: true });
  assert.equal(created.length, 5);
  assert.ok(created.every((r) => r.success));
  const ids = created.map((r) => r.id);
  const got = await conn.sobject('Contact').retrieve(ids);
  assert.deepEqual(got.map((r) => r.LastName), records.map((r) => r.LastName));
  const updated = await conn.sobject('Contact').update(ids.map((Id) => ({ Id, Title: 'Bulk' })));
  assert.ok(updated.every((r) => r.success));
  const failed = await conn.sobject('Contact').create([{ LastName: 'ok' }, { FirstName: 'no last name' }], { allOrNone: true });
  assert.equal(failed[0].success, false);
  assert.equal(failed[1].errors[0].statusCode, 'REQUIRED_FIELD_MISSING');
  const destroyed = await conn.sobject('Contact').destroy(ids);
  assert.ok(destroyed.every((r) => r.success));
});

test('describe', async () => {
  const conn = await login();
  const global = await conn.describeGlobal();
  assert.ok(global.sobjects.some((o) => o.name === 'Invoice__c' && o.custom));
  const contact = await conn.sobject('Contact').describe();
  const field = contact.fields.find((f) => f.name === 'Level__c');
  assert.equal(field.type, 'picklist');
  assert.deepEqual(field.picklistValues.map((v) => v.value), ['Primary', 'Secondary', 'Tertiary']);
});

test('refresh token flow renews an expired session', async () => {
  const conn = new jsforce.Connection({ oauth2: oauth2(), instanceUrl: baseUrl, refreshToken: '5Aep861sfsim.demo.refresh.token', version: '62.0' });
  let refreshed = 0;
  conn.on('refresh', () => { refreshed += 1; });
  const first = await conn.query('SELECT COUNT() FROM Account');
  assert.equal(first.totalSize, 40);
  await control('POST', 'tokens/expire');
  const second = await conn.query('SELECT COUNT() FROM Account');
  assert.equal(second.totalSize, 40);
  assert.ok(refreshed >= 1, 'jsforce refreshed its token');
});

// Bulk API 2.0 query jobs through jsforce's bulk2 API.

const TRICKY = [
  { LastName: 'BulkJs "quoted", with commas', Title: 'semi;colon|pipe', Description: 'line one\nline two\r\nline three', Languages__c: 'English;French' },
  { LastName: 'BulkJs Zoë 東京 🚀' },
  { LastName: 'BulkJs plain', Description: 'trailing quote"', Languages__c: 'German' },
];
const FIELDS = ['Id', 'LastName', 'Title', 'Description', 'Languages__c', 'Birthdate', 'HasOptedOutOfEmail', 'SystemModstamp', 'Account.Name'];
const BULK_SOQL = `SELECT ${FIELDS.join(', ')} FROM Contact WHERE LastName LIKE 'BulkJs%' ORDER BY Id`;
const poll = { pollInterval: 50 };

// A REST query value as Bulk writes it in CSV ('' for null).
const restText = (record, column) => {
  const value = column.split('.').reduce((v, part) => (v == null ? null : v[part]), record);
  if (value == null) return '';
  if (typeof value === 'string' && value.endsWith('+0000')) return `${value.slice(0, -5)}Z`;
  return String(value);
};

// Runs a test against an org holding the tricky contacts, then resets it so other tests see the seeded org.
const withBulkOrg = async (settings, body) => {
  const { bulk_job_processing_ms, bulk_results_page_bytes } = await control('GET', 'settings');
  await control('PATCH', 'settings', { bulk_job_processing_ms: 100, ...settings });
  const conn = await login();
  try {
    await conn.sobject('Contact').create(TRICKY, { allOrNone: true });
    await body(conn);
  } finally {
    await control('POST', 'reset');
    await control('PATCH', 'settings', { bulk_job_processing_ms, bulk_results_page_bytes });
  }
};

test('bulk2.query reads quoted, unicode and null values as REST returns them', () => withBulkOrg({}, async (conn) => {
  const rest = (await conn.query(BULK_SOQL)).records;
  assert.equal(rest.length, TRICKY.length);
  const bulk = await (await conn.bulk2.query(BULK_SOQL, poll)).toArray();
  assert.deepEqual(bulk, rest.map((r) => Object.fromEntries(FIELDS.map((f) => [f, restText(r, f)]))));
  assert.equal(bulk[0].Description, 'line one\nline two\r\nline three');
}));

test('bulk2.query with scanAll reads deleted records', () => withBulkOrg({}, async (conn) => {
  const gone = await conn.sobject('Contact').create({ LastName: 'BulkJsGone' });
  await conn.sobject('Contact').destroy(gone.id);
  const soql = `SELECT Id, IsDeleted FROM Contact WHERE Id = '${gone.id}'`;
  assert.deepEqual(await (await conn.bulk2.query(soql, poll)).toArray(), []);
  assert.deepEqual(await (await conn.bulk2.query(soql, { ...poll, scanAll: true })).toArray(), [{ Id: gone.id, IsDeleted: 'true' }]);
}));

test('refused queries reject at creation, unsupported ones when the job fails', () => withBulkOrg({}, async (conn) => {
  await assert.rejects(conn.bulk2.query('SELECT Id, MailingAddress FROM Contact', poll),
    (e) => e.errorCode === 'API_ERROR' && e.message === 'Selecting compound data not supported in Bulk Query');
  await assert.rejects(conn.bulk2.query('SELECT Nope FROM Contact', poll), (e) => e.errorCode === 'INVALID_FIELD');
  await assert.rejects(conn.bulk2.query('SELECT COUNT() FROM Contact', poll), /Query job failed to complete/);
  const jobs = (await control('GET', 'requests')).requests.filter((e) => e.method === 'POST' && e.path.endsWith('/jobs/query'));
  assert.equal(jobs.at(-1).soql, 'SELECT COUNT() FROM Contact');
}));

test('a query job is checked, aborted and deleted through QueryJobV2', () => withBulkOrg({ bulk_job_processing_ms: 60_000 }, async (conn) => {
  const created = await conn.request({
    method: 'POST',
    url: '/services/data/v62.0/jobs/query',
    body: JSON.stringify({ operation: 'query', query: 'SELECT Id FROM Account' }),
    headers: { 'Content-Type': 'application/json' },
  });
  const job = conn.bulk2.job('query', { id: created.id });
  assert.equal((await job.check()).state, 'UploadComplete');
  assert.equal((await job.abort()).state, 'Aborted');
  await job.delete();
  await assert.rejects(job.check(), (e) => e.errorCode === 'NOT_FOUND');
}));

test('results of several pages: sfsim pages them as Salesforce does, which jsforce 3.10.16 misreads', () => withBulkOrg({ bulk_results_page_bytes: 20_000 }, async (conn) => {
  const soql = 'SELECT Id, LastName FROM Contact ORDER BY Id';
  const total = (await conn.query('SELECT COUNT() FROM Contact')).totalSize;
  // jsforce pipes every page into one CSV parser while the next page is already
  // arriving, so later pages' header rows and interleaved chunks break it, as
  // reported against Salesforce (jsforce issue 1739).
  const outcome = await (await conn.bulk2.query(soql, poll)).toArray().then((records) => records, (error) => error);
  const misread = outcome instanceof Error || outcome.length !== total || outcome.some((r) => r.Id === 'Id');
  assert.ok(misread, 'jsforce now reads several pages: test them through it');
  // The pages themselves, fetched with jsforce's session: each has the header and its count.
  const created = await conn.request({
    method: 'POST',
    url: '/services/data/v62.0/jobs/query',
    body: JSON.stringify({ operation: 'query', query: soql }),
    headers: { 'Content-Type': 'application/json' },
  });
  await conn.bulk2.job('query', { id: created.id }).poll(50, 10_000);
  const ids = [];
  let pages = 0;
  for (let locator = ''; locator !== 'null'; pages += 1) {
    const url = `${baseUrl}/services/data/v62.0/jobs/query/${created.id}/results${locator ? `?locator=${locator}` : ''}`;
    const r = await fetch(url, { headers: { Authorization: `Bearer ${conn.accessToken}` } });
    const [header, ...rows] = (await r.text()).trimEnd().split('\n');
    assert.equal(header, '"Id","LastName"');
    assert.equal(rows.length, Number(r.headers.get('sforce-numberofrecords')));
    ids.push(...rows.map((row) => row.split(',')[0].replaceAll('"', '')));
    locator = r.headers.get('sforce-locator');
  }
  assert.ok(pages > 2);
  const rest = await conn.query(soql).run({ autoFetch: true, maxFetch: 100_000 });
  assert.deepEqual(ids, rest.records.map((r) => r.Id));
}));

test('web-server flow with PKCE: authorize, approve, exchange, rotate, revoke', async () => {
  // jsforce sends code_challenge without code_challenge_method, and the verifier with every token request.
  const oauth = new jsforce.OAuth2({ ...oauth2(), useVerifier: true });
  const page = await fetch(oauth.getAuthorizationUrl({ state: 'jsforce-pkce', scope: 'api refresh_token' }));
  assert.equal(page.status, 200);
  const { redirect } = await control('POST', 'oauth/approve', { state: 'jsforce-pkce', username: 'admin@sfsim.example' });
  const callback = new URL(redirect);
  assert.equal(callback.searchParams.get('state'), 'jsforce-pkce');
  const conn = new jsforce.Connection({ oauth2: oauth, version: '62.0' });
  const userInfo = await conn.authorize(callback.searchParams.get('code'));
  assert.equal(userInfo.organizationId, '00D5g000004SIMxEAG');
  assert.ok(conn.refreshToken);
  assert.ok((await conn.query('SELECT COUNT() FROM Account')).totalSize > 0);
  await assert.rejects(conn.authorize(callback.searchParams.get('code')), /expired authorization code/);

  await control('POST', 'oauth', { rotate_refresh_tokens: true });
  try {
    const first = conn.refreshToken;
    const rotated = await oauth.refreshToken(first);
    assert.ok(rotated.refresh_token && rotated.refresh_token !== first);
    await assert.rejects(oauth.refreshToken(first), /expired access\/refresh token/);
    conn.refreshToken = rotated.refresh_token;
  } finally {
    await control('POST', 'oauth', { rotate_refresh_tokens: false });
  }
  const latest = conn.refreshToken;
  await conn.logout(true);
  await assert.rejects(oauth.refreshToken(latest), /expired access\/refresh token/);
});

// Bulk API 2.0 ingest jobs through jsforce's bulk2.loadAndWaitForResults.

const load = (conn, options) => conn.bulk2.loadAndWaitForResults({ pollInterval: 50, pollTimeout: 30_000, ...options });

test('bulk2 insert reports successful and failed records', () => withBulkOrg({}, async (conn) => {
  const input = [
    // jsforce takes the CSV's columns from the first record.
    { LastName: 'IngestJs One', FirstName: 'Ada', Title: 'says "hi", twice', Email: 'one@ingest-js.example' },
    { FirstName: 'NoLast', Email: 'nolast@ingest-js.example' },
    { LastName: 'IngestJs Two', Title: 'line\nbreak' },
  ];
  const res = await load(conn, { object: 'Contact', operation: 'insert', input });
  assert.equal(res.successfulResults.length, 2);
  assert.ok(res.successfulResults.every((r) => r.sf__Id.startsWith('003') && r.sf__Created === 'true'));
  assert.deepEqual(res.successfulResults.map((r) => r.Title).sort(), ['line\nbreak', 'says "hi", twice']);
  assert.equal(res.failedResults.length, 1);
  assert.equal(res.failedResults[0].sf__Error, 'REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --');
  assert.equal(res.failedResults[0].FirstName, 'NoLast');
  assert.deepEqual(res.unprocessedRecords, []);
  const found = await conn.query("SELECT Id FROM Contact WHERE LastName LIKE 'IngestJs%'");
  assert.deepEqual(found.records.map((r) => r.Id).sort(), res.successfulResults.map((r) => r.sf__Id).sort());
}));

test('bulk2 upsert by external id creates, updates and nulls', () => withBulkOrg({}, async (conn) => {
  const first = await load(conn, {
    object: 'Contact', operation: 'upsert', externalIdFieldName: 'User_Id__c',
    input: [{ User_Id__c: 'JS-1', LastName: 'Upsert One', Title: 'Keep?' }],
  });
  assert.equal(first.successfulResults[0].sf__Created, 'true');
  const res = await load(conn, {
    object: 'Contact', operation: 'upsert', externalIdFieldName: 'User_Id__c',
    input: [
      { User_Id__c: 'JS-1', LastName: 'Upsert Renamed', Title: null, Email: 'js1@ingest-js.example' },
      { User_Id__c: 'JS-2', LastName: 'Upsert Two' },
      { User_Id__c: 'JS-3', LastName: 'Upsert Bad', Email: 'not an email' },
    ],
  });
  const byKey = Object.fromEntries(res.successfulResults.map((r) => [r.User_Id__c, r]));
  assert.equal(byKey['JS-1'].sf__Created, 'false');
  assert.equal(byKey['JS-1'].sf__Id, first.successfulResults[0].sf__Id);
  assert.equal(byKey['JS-2'].sf__Created, 'true');
  assert.equal(res.failedResults.length, 1);
  assert.match(res.failedResults[0].sf__Error, /^INVALID_EMAIL_ADDRESS:/);
  const [one] = (await conn.query("SELECT LastName, Title FROM Contact WHERE User_Id__c = 'JS-1'")).records;
  assert.equal(one.LastName, 'Upsert Renamed');
  assert.equal(one.Title, null, 'jsforce writes null as #N/A');
}));

test('bulk2 delete removes records and reports unknown ids', () => withBulkOrg({}, async (conn) => {
  const made = await conn.sobject('Account').create([{ Name: 'IngestJs Del 1' }, { Name: 'IngestJs Del 2' }], { allOrNone: true });
  const unknown = '0015g0000zzzzzzAAA';
  const res = await load(conn, { object: 'Account', operation: 'delete', input: [...made.map((m) => ({ Id: m.id })), { Id: unknown }] });
  assert.deepEqual(res.successfulResults.map((r) => r.sf__Id).sort(), made.map((m) => m.id).sort());
  assert.ok(res.successfulResults.every((r) => r.sf__Created === 'false'));
  assert.deepEqual(res.failedResults, [{ sf__Id: unknown, sf__Error: 'INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--', Id: unknown }]);
  assert.equal((await conn.query("SELECT Id FROM Account WHERE Name LIKE 'IngestJs Del%'")).totalSize, 0);
}));
