import t from 'tap'
import { mkdtempSync, readFileSync, statSync, utimesSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RESOLV_CONF, writePodEtc } from '../../src/lab/hosts'
import type { LabPlan } from '../../src/lab/topology'

// /etc/netns files are rewritten in place: `ip netns exec` bind-mounts the inode, so a
// rename would leave running pods reading the old file.

t.test('hosts files are rewritten in place (same inode) and resolv.conf names no server', async (t) => {
  const etc = mkdtempSync(join(tmpdir(), 'ferry-etc-netns-'))
  const plan = { paths: { etcNetnsDir: etc } } as unknown as LabPlan
  writePodEtc(plan, 'fl-x-p', '10.96.0.10\tcart\n')
  const file = join(etc, 'fl-x-p', 'hosts')
  const ino = statSync(file).ino
  writePodEtc(plan, 'fl-x-p', '10.96.0.11\tcart\n')
  t.equal(statSync(file).ino, ino, 'same inode')
  t.equal(readFileSync(file, 'utf8'), '10.96.0.11\tcart\n')
  t.equal(readFileSync(join(etc, 'fl-x-p', 'resolv.conf'), 'utf8'), RESOLV_CONF)
  t.notMatch(RESOLV_CONF, /^nameserver/m)
})

t.test('a hosts file that already says it is left alone, a changed one cut to its new length', async (t) => {
  // Pods look names up while the lab rewrites their files: a truncated moment fails a
  // lookup (EAI_AGAIN: the resolver falls through to the server-less resolv.conf).
  const etc = mkdtempSync(join(tmpdir(), 'ferry-etc-netns-'))
  const plan = { paths: { etcNetnsDir: etc } } as unknown as LabPlan
  const file = join(etc, 'fl-x-p', 'hosts')
  writePodEtc(plan, 'fl-x-p', '10.96.0.10\tcart cart.shop cart.shop.svc\n')
  const past = new Date(Date.now() - 3_600_000)
  utimesSync(file, past, past)
  writePodEtc(plan, 'fl-x-p', '10.96.0.10\tcart cart.shop cart.shop.svc\n')
  t.equal(statSync(file).mtimeMs, past.getTime(), 'unchanged text: not written')
  writePodEtc(plan, 'fl-x-p', '10.96.0.12\tweb\n')
  t.equal(readFileSync(file, 'utf8'), '10.96.0.12\tweb\n', 'shorter text: nothing of the old one left')
})
