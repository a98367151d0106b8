import * as arrow from 'apache-arrow';
import { createRequire } from 'module';
const require = createRequire(import.meta.url);
const pw = require('/tmp/xcheck/node_modules/parquet-wasm/node/parquet_wasm.js');
import fs from 'fs';
const T = (o) => ({ from: null, value: null, role: null, content: null, ...o });
const rows = [
  { conversations: [T({from:'human', value:'Hi'}), T({from:'gpt', value:'Hello 👋'})], tools: null },
  { conversations: [T({role:'system', content:'Be brief.'}), T({role:'user', content:'2+2?'}), T({role:'assistant', content:'4'})], tools: '[{"type": "function", "function": {"name": "add"}}]' },
  { conversations: [T({from:'human', value:'mixed'}), T({role:'assistant', content:'yes'})], tools: null },
  { conversations: [], tools: null },
  { conversations: [T({from:'user', value:'only user'})], tools: 'not json' },
];
const turnType = new arrow.Struct(['from','value','role','content'].map(n => new arrow.Field(n, new arrow.Utf8(), true)));
const schema = new arrow.Schema([
  new arrow.Field('conversations', new arrow.List(new arrow.Field('element', turnType, true)), true),
  new arrow.Field('tools', new arrow.Utf8(), true),
]);
const vecs = {};
for (const f of schema.fields) {
  const b = arrow.makeBuilder({ type: f.type, nullValues: [null, undefined] });
  for (const r of rows) b.append(r[f.name]);
  vecs[f.name] = b.finish().toVector();
}
const table = new arrow.Table(vecs);
const wt = pw.Table.fromIPCStream(arrow.tableToIPC(table, 'stream'));
const props = new pw.WriterPropertiesBuilder().setCompression(pw.Compression.SNAPPY).setMaxRowGroupSize(2).build();
fs.writeFileSync(process.argv[2], pw.writeParquet(wt, props));
console.log('ok');
