// A TCP port no one listens on right now (the kernel's pick), for a group's rendezvous on one machine.

import * as net from 'node:net';

/** A port that was free a moment ago on `host` (another program may still take it before you do). */
export function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
