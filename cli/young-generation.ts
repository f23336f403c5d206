// Keeps V8's young generation at the size it starts with instead of letting it grow while ferry
// runs. By default the two semi-spaces double (up to 16 MiB each on 64-bit) as soon as short-lived
// objects survive a few scavenges, and their pages stay resident: measured on bench/apply's 50 MB
// tree (node 20), `ferry update` peaks ~15 MiB lower with this (116 → ~100 MiB full, 119 → ~105
// delta), with more but smaller scavenges and no slower (bench/README.md "apply"). ferry's big
// buffers live outside the JS heap, so a small young generation costs it little.
//
// Set at run time, first thing in cli/ferry.ts: the heap-size flags (--max-semi-space-size) are
// read only when V8 starts and have no effect here (measured); the growth factor is read each time
// the young generation would grow. V8 12 and later refuse a factor below 2 (the call then changes
// nothing), so this cut is node 20's; node 24 keeps its default young generation.

import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--semi-space-growth-factor=1');
