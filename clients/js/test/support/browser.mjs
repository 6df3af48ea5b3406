// Headless Chromium through chromedriver's W3C WebDriver HTTP API (Debian's chromium and
// chromium-driver), as Tests/TestSupport/Browser.swift does for the Swift tests.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync, openSync } from "node:fs";
import { dirname, join } from "node:path";
import { http, eventually, track } from "./cluster.mjs";
import { createServer } from "node:net";

function which(name) {
  const result = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

export const chromium = which("chromium") ?? which("chromium-browser") ?? which("google-chrome");
export const chromedriver = which("chromedriver");

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => { const { port } = server.address(); server.close(() => resolve(port)); });
  });
}

/** One chromedriver process; `open()` makes a browser session (each its own profile). */
export class Driver {
  static async start(logDirectory) {
    const port = await freePort();
    const fd = openSync(join(logDirectory, "chromedriver.log"), "a");
    const child = track(spawn(chromedriver, [`--port=${port}`, "--allowed-ips=127.0.0.1"], { stdio: ["ignore", fd, fd] }));
    const driver = new Driver(port, child);
    await eventually("chromedriver up", async () => (await driver.call("GET", "/status")).status === 200, { timeout: 30000 });
    return driver;
  }

  constructor(port, child) { this.port = port; this.child = child; this.exited = new Promise((r) => child.on("exit", r)); }

  async call(method, path, body) {
    const response = await http(`http://127.0.0.1:${this.port}${path}`, {
      method, headers: { "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, value: response.text ? JSON.parse(response.text).value : undefined };
  }

  async open() {
    const { value } = await this.call("POST", "/session", {
      capabilities: { alwaysMatch: { browserName: "chrome", "goog:chromeOptions": {
        binary: chromium,
        args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,750"],
      } } },
    });
    if (!value?.sessionId) throw new Error("chromedriver opened no session: " + JSON.stringify(value));
    return new Page(this, value.sessionId);
  }

  async stop() {
    this.child.kill("SIGTERM");
    await this.exited;
  }
}

export class Page {
  constructor(driver, session) { this.driver = driver; this.session = session; }

  async command(method, path, body) {
    const { status, value } = await this.driver.call(method, `/session/${this.session}/${path}`, body);
    if (status !== 200) throw new Error(`webdriver ${path}: ${JSON.stringify(value)}`);
    return value;
  }

  navigate(url) { return this.command("POST", "url", { url }); }

  /** Runs `script` (a function body with `return`) in the page. */
  evaluate(script, ...args) { return this.command("POST", "execute/sync", { script, args }); }

  /** Re-evaluates `script` until its value satisfies `accept` (30 s bound); returns the value. */
  async waitFor(what, script, accept = (v) => Boolean(v), timeout = 30000) {
    let last;
    try {
      return await eventually(what, async () => { last = await this.evaluate(script); return accept(last) ? (last ?? true) : false; }, { timeout, every: 100 });
    } catch (error) {
      error.message += ` (page value: ${JSON.stringify(last)})`;
      throw error;
    }
  }

  async screenshot(file) {
    const base64 = await this.command("GET", "screenshot");
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, Buffer.from(base64, "base64"));
  }

  close() { return this.driver.call("DELETE", `/session/${this.session}`).catch(() => {}); }
}
