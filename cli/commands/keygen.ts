// ferry keygen --out <name>: an ed25519 key pair as <name>.key (0600), <name>.pub and <name>.pem.

import type { CommandModule } from 'yargs';
import { generateKeyFiles } from '../../core/trust/keys.ts';
import { printResult, type OutputFlags } from '../output.ts';

interface Args extends OutputFlags {
  out: string;
}

export const keygenCommand: CommandModule<object, Args> = {
  command: 'keygen',
  describe: 'Make an ed25519 key pair: <out>.key (secret, mode 0600), <out>.pub and <out>.pem',
  builder: (y) => y.option('out', { type: 'string', demandOption: true, describe: 'path and base name of the key files' }) as never,
  handler: async (args) => {
    const key = await generateKeyFiles(args.out);
    printResult(args, { keyid: key.keyid, files: key.files }, () => [`key ${key.keyid}`, ...key.files.map((f) => `  wrote ${f}`)]);
  },
};
