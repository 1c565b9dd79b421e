import t from 'tap'
import { confToConflist, hasFerryEntry, withFerryEntry, withoutFerryEntry } from '../../src/cni/conflist'
import { cniEntry, CNI_ENTRY_DEFAULTS } from '../../src/cni/entry'

// Editing the primary CNI's file as text: only the plugins list changes, whatever the
// primary's formatting, and whatever its strings contain (brackets, quotes, escapes,
// "plugins" as a value) — the scanner must never take a character inside a string for
// structure. Each edit is checked by parsing; these cases guard the scanner itself.

const entry = cniEntry(CNI_ENTRY_DEFAULTS)

t.test('strings full of structure characters, nested "plugins" keys, odd spacing: only the list changes', async (t) => {
  const tricky = '{"name":"a ] } [ { \\" , \\\\","cniVersion":"1.0.0",\r\n\t"meta":{"plugins":["not", "this"]},  "plugins" :\t[ {"type":"cilium-cni","note":"}]\\"[{"} ] , "after": true}'
  const { text, changed } = withFerryEntry(tricky, entry, 'tricky')
  t.ok(changed)
  const doc = JSON.parse(text)
  t.same(doc.meta, { plugins: ['not', 'this'] }, 'a nested "plugins" key is not the list')
  t.same(doc.plugins.map((p: any) => p.type), ['cilium-cni', 'ferry-cni'])
  t.equal(doc.after, true)
  t.equal(withoutFerryEntry(text, 'tricky').text, tricky, 'removed again: the original bytes')
})

t.test('duplicate and misplaced entries are replaced by one, last; an equal entry in place is left alone', async (t) => {
  const twice = JSON.stringify({ cniVersion: '1.0.0', name: 'k', plugins: [{ ...entry, timeoutMs: 1 }, { type: 'bridge' }, entry] }, null, 2)
  const fixed = withFerryEntry(twice, entry, 'twice')
  t.ok(fixed.changed)
  t.same(JSON.parse(fixed.text).plugins, [{ type: 'bridge' }, entry])
  t.notOk(withFerryEntry(fixed.text, entry, 'twice').changed, 'then idempotent')
  t.ok(hasFerryEntry(fixed.text))
  const first = JSON.stringify({ cniVersion: '1.0.0', name: 'k', plugins: [entry, { type: 'bridge' }] })
  t.same(JSON.parse(withFerryEntry(first, entry, 'first').text).plugins, [{ type: 'bridge' }, entry], 'an entry before the primary moves after it')
  const onlyOurs = JSON.stringify({ cniVersion: '1.0.0', name: 'k', plugins: [{ type: 'ferry-cni' }] })
  t.same(JSON.parse(withoutFerryEntry(onlyOurs, 'x').text).plugins, [], 'removal of the only element')
})

t.test('a lone configuration becomes a list around its unchanged text; versions that cannot chain are refused', async (t) => {
  const lone = '{\n  "cniVersion": "1.0.0",\n  "name": "mynet",\n  "type": "ptp",\n  "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}\n}\n'
  const list = confToConflist(lone, 'x.conf')
  t.ok(list.includes(lone.trim()))
  t.same(JSON.parse(list), { cniVersion: '1.0.0', name: 'mynet', plugins: [JSON.parse(lone)] })
  for (const v of ['0.1.0', '0.2.0', 'latest', '']) {
    t.throws(() => confToConflist(`{"cniVersion": "${v}", "name": "n", "type": "bridge"}`, 'x.conf'), { code: 'FERRY_ERR_CNI_CONF', message: /cannot chain plugins/ }, v)
  }
  t.ok(JSON.parse(confToConflist('{"cniVersion": "0.3.1", "type": "bridge"}', 'x.conf')).name !== undefined, 'a list needs a name: a default when the network has none')
})
