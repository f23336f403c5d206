#!/usr/bin/env node
// The `ferry` executable (package.json "bin"). It hands the library no test seams.
// First: it must run before the commands allocate (cli/young-generation.ts).
import './young-generation.ts';
import { runCli } from './main.ts';

await runCli(process.argv.slice(2));
