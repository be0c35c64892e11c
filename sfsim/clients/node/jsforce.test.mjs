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
