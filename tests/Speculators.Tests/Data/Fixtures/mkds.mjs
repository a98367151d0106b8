import * as arrow from 'apache-arrow';
import fs from 'fs';
const meta = '{"info": {"features": {"input_ids": {"feature": {"dtype": "int64", "_type": "Value"}, "_type": "Sequence"}, "loss_mask": {"feature": {"dtype": "int64", "_type": "Value"}, "_type": "Sequence"}, "seq_len": {"dtype": "int64", "_type": "Value"}, "messages": [{"role": {"dtype": "string", "_type": "Value"}, "content": {"dtype": "string", "_type": "Value"}}]}}}';
function rowsFor(start, n) {
  const rows = [];
  for (let r = start; r < start + n; r++) {
    const len = 1 + (r * 7) % 11;
    const ids = [], m = [];
    for (let k = 0; k < len; k++) { ids.push(BigInt(r * 1000 + k * 37)); m.push(BigInt(k >= len / 2 ? 1 : 0)); }
    rows.push({ input_ids: ids, loss_mask: m, seq_len: BigInt(len), messages: [{ role: 'user', content: 'q' + r }, { role: 'assistant', content: 'a' + r }] });
  }
  return rows;
}
const msgType = new arrow.Struct([new arrow.Field('role', new arrow.Utf8(), true), new arrow.Field('content', new arrow.Utf8(), true)]);
function schemaOf(intType, withSeq) {
  const f = [
    new arrow.Field('input_ids', new arrow.List(new arrow.Field('item', intType, true)), true),
    new arrow.Field('loss_mask', new arrow.List(new arrow.Field('item', intType, true)), true),
  ];
  if (withSeq) f.push(new arrow.Field('seq_len', new arrow.Int64(), true));
  f.push(new arrow.Field('messages', new arrow.List(new arrow.Field('item', msgType, true)), true));
  return new arrow.Schema(f, new Map([['huggingface', meta]]));
}
function batch(schema, rows, conv) {
  const children = schema.fields.map(f => {
    const b = arrow.makeBuilder({ type: f.type, nullValues: [null, undefined] });
    for (const r of rows) b.append(conv(f.name, r[f.name]));
    return b.finish().toVector().data[0];
  });
  const data = arrow.makeData({ type: new arrow.Struct(schema.fields), length: rows.length, children });
  return new arrow.RecordBatch(schema, data);
}
function writeShard(path, schema, batches) {
  const w = arrow.RecordBatchStreamWriter.writeAll(batches);
  const bytes = w.toUint8Array(true);
  fs.writeFileSync(path, bytes);
}
const dir = process.argv[2];
// Dataset A: int64, two shards of 2 batches each (3+2 rows, 2+2 rows), plus messages column.
fs.mkdirSync(dir + '/multi', { recursive: true });
const s64 = schemaOf(new arrow.Int64(), true);
const id = (n, v) => v;
writeShard(dir + '/multi/data-00000-of-00002.arrow', s64, [batch(s64, rowsFor(0, 3), id), batch(s64, rowsFor(3, 2), id)]);
writeShard(dir + '/multi/data-00001-of-00002.arrow', s64, [batch(s64, rowsFor(5, 2), id), batch(s64, rowsFor(7, 2), id)]);
fs.writeFileSync(dir + '/multi/state.json', JSON.stringify({ _data_files: [{ filename: 'data-00000-of-00002.arrow' }, { filename: 'data-00001-of-00002.arrow' }], _fingerprint: 'aaaabbbbccccdddd', _format_columns: null, _format_kwargs: {}, _format_type: null, _output_all_columns: false, _split: 'train' }, null, 2));
fs.writeFileSync(dir + '/multi/dataset_info.json', '{}');
// Dataset B: int32 lists, no seq_len, one shard.
fs.mkdirSync(dir + '/int32', { recursive: true });
const s32 = schemaOf(new arrow.Int32(), false);
const to32 = (n, v) => (n === 'input_ids' || n === 'loss_mask') ? v.map(Number) : v;
writeShard(dir + '/int32/data-00000-of-00001.arrow', s32, [batch(s32, rowsFor(0, 4), to32)]);
fs.writeFileSync(dir + '/int32/state.json', JSON.stringify({ _data_files: [{ filename: 'data-00000-of-00001.arrow' }], _fingerprint: '0000111122223333', _format_columns: null, _format_kwargs: {}, _format_type: 'torch', _output_all_columns: false, _split: null }, null, 2));
fs.writeFileSync(dir + '/int32/dataset_info.json', '{}');
console.log('ok');
