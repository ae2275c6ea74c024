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
    // main() turns every expected failure into an exit code; reaching here is a bug in lem.
    console.error('lem: internal error:', err instanceof Error ? err.stack ?? err.message : String(err));
    process.exitCode = 70;
  },
);
