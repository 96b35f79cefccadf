import net from "node:net";

/**
 * A TCP proxy in front of the gateway that a test can cut: every connection through it
 * is dropped, and new ones are refused until `restore()`.
 */
export class CuttableProxy {
  private server: net.Server;
  private pairs = new Set<[net.Socket, net.Socket]>();
  private refusing = false;
  port = 0;

  constructor(target: URL) {
    this.server = net.createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const up = net.connect(Number(target.port), target.hostname);
      const pair: [net.Socket, net.Socket] = [client, up];
      this.pairs.add(pair);
      const drop = () => {
        client.destroy();
        up.destroy();
        this.pairs.delete(pair);
      };
      client.on("error", drop).on("close", drop);
      up.on("error", drop).on("close", drop);
      client.pipe(up);
      up.pipe(client);
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  /** Drops every open connection and refuses new ones. */
  cut(): void {
    this.refusing = true;
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  restore(): void {
    this.refusing = false;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
