// A TCP relay on a loopback port in front of a node, for connections the tests break on purpose.
import { createServer, connect } from "node:net";

/**
 * Relays a free loopback port to `port`. `blackhole()` makes the connections open now half-open:
 * what either side sends is dropped, nothing is closed (a dead NAT entry, a peer gone without a
 * FIN); `cut()` closes them. Connections made afterwards are relayed as usual, so a client can
 * reconnect through it. `close()` ends everything.
 */
export async function startProxy(port) {
  const pairs = new Set();
  const server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    const pair = { client, upstream, toServer: true, toClient: true };
    pairs.add(pair);
    client.on("data", (chunk) => { if (pair.toServer) upstream.write(chunk); });
    upstream.on("data", (chunk) => { if (pair.toClient) client.write(chunk); });
    const end = () => { pairs.delete(pair); client.destroy(); upstream.destroy(); };
    for (const socket of [client, upstream]) { socket.on("close", end); socket.on("error", end); }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const proxyPort = server.address().port;
  return {
    wsURL: `ws://127.0.0.1:${proxyPort}/ws`,
    /**
     * Drops what is sent on the connections open now, both ways; `{ toServer: false }` drops
     * only the node's frames (the client's still reach the node), `{ toClient: false }` only the client's.
     */
    blackhole({ toServer = true, toClient = true } = {}) {
      for (const pair of pairs) {
        if (toServer) pair.toServer = false;
        if (toClient) pair.toClient = false;
      }
    },
    cut() { for (const pair of [...pairs]) { pair.client.destroy(); pair.upstream.destroy(); } },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
