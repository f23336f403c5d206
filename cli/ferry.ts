#!/usr/bin/env node
// The `ferry` executable (package.json "bin"). It hands the library no test seams.
import { runCli } from './main.ts';

await runCli(process.argv.slice(2));
