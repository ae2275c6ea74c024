#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';

// Output piped into a reader that stops early (`lem … | head`) is not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    // main() reports every failure itself (a crash log for bugs); reaching here is a bug in that.
    console.error(`lem: internal error: ${err instanceof Error ? err.message : String(err)} — this is a bug; please report it (see README.md, 'Reporting a bug').`);
    process.exitCode = 70;
  },
);
