/**
 * The approval inbox in a real headless Chromium, driven over the DevTools protocol: a box asks
 * (gate exec), the page shows the pending request live, a click on Approve lets the command run.
 * The screenshot lands in test-output/gate-inbox.png. The one-time link is checked to be one-time.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { get } from "node:http";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { FOURWALL, makeFixture, ROOT } from "../helpers/box.js";

const chromium = ["chromium", "chromium-browser", "google-chrome"].find(
  (c) => spawnSync("which", [c]).status === 0,
);

/** A tiny DevTools client, run by a node with WebSocket (experimental flag on Node 20). */
const DRIVER = `
const [browserWs, url, shot] = process.argv.slice(1);
const ws = new WebSocket(browserWs);
let id = 0; const waiting = new Map();
const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
  const n = ++id; waiting.set(n, { resolve, reject });
  ws.send(JSON.stringify({ id: n, method, params, sessionId }));
});
ws.onmessage = (m) => { const msg = JSON.parse(m.data); const w = waiting.get(msg.id); if (w) { waiting.delete(msg.id); msg.error ? w.reject(new Error(msg.error.message)) : w.resolve(msg.result); } };
await new Promise((r) => (ws.onopen = r));
const { targetId } = await send("Target.createTarget", { url: "about:blank" });
const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
await send("Page.enable", {}, sessionId);
await send("Emulation.setDeviceMetricsOverride", { width: 1000, height: 700, deviceScaleFactor: 1, mobile: false }, sessionId);
await send("Page.navigate", { url }, sessionId);
const text = async () => (await send("Runtime.evaluate", { expression: "document.body ? document.body.innerText : ''", returnByValue: true }, sessionId)).result.value;
let seen = "";
for (let i = 0; i < 200 && !seen.includes("touch approved.txt"); i++) { await new Promise((r) => setTimeout(r, 50)); seen = await text(); }
const state = (await send("Runtime.evaluate", { expression: "document.getElementById('state').textContent", returnByValue: true }, sessionId)).result.value;
const png = await send("Page.captureScreenshot", { format: "png" }, sessionId);
(await import("node:fs")).writeFileSync(shot, Buffer.from(png.data, "base64"));
await send("Runtime.evaluate", { expression: "document.querySelector('button.yes').click()" }, sessionId);
let after = "";
for (let i = 0; i < 100; i++) { await new Promise((r) => setTimeout(r, 50)); after = await text(); if (after.includes("Nothing is waiting")) break; }
console.log(JSON.stringify({ seen, state, after }));
ws.close(); process.exit(0);
`;

const fetchStatus = (url: string) =>
  new Promise<number>((resolve) =>
    get(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on("error", () => resolve(0)),
  );

describe("approval inbox (headless Chromium)", {
  skip: chromium ? false : "chromium is not installed (npm run setup installs it)",
}, () => {
  it("shows a pending request live; Approve lets it run; the link works once; screenshot saved", async () => {
    const fx = makeFixture("root");
    const box = spawn(
      process.execPath,
      [
        FOURWALL,
        "run",
        "--inbox",
        "--",
        "sh",
        "-c",
        `node ${FOURWALL} gate exec -- touch approved.txt; echo "status $?"; sleep 3`,
      ],
      {
        cwd: fx.workdir,
        env: { ...fx.env, NODE_PATH: path.join(ROOT, "node_modules") },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    box.stdout.on("data", (d) => (stdout += d));
    box.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise((r) => box.on("close", r));
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no inbox link: ${stderr}`)), 15_000);
      box.stderr.on("data", () => {
        const m = /approval inbox at (http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+)/.exec(stderr);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
    });
    const profile = mkdtempSync(path.join(os.tmpdir(), "fourwall-chromium-"));
    const browser = spawn(
      chromium!,
      [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        "about:blank",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    try {
      const browserWs = await new Promise<string>((resolve, reject) => {
        let err = "";
        const t = setTimeout(() => reject(new Error(`chromium did not start: ${err}`)), 30_000);
        browser.stderr.on("data", (d) => {
          err += d;
          const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
          if (m) {
            clearTimeout(t);
            resolve(m[1]!);
          }
        });
      });
      const outDir = path.join(ROOT, "test-output");
      mkdirSync(outDir, { recursive: true });
      const shot = path.join(outDir, "gate-inbox.png");
      const driver = spawnSync(
        process.execPath,
        [
          "--experimental-websocket",
          "--no-warnings",
          "--input-type=module",
          "-e",
          DRIVER,
          browserWs,
          url,
          shot,
        ],
        { encoding: "utf8", timeout: 60_000 },
      );
      assert.equal(driver.status, 0, driver.stderr);
      const result = JSON.parse(driver.stdout.trim().split("\n").at(-1)!);
      assert.match(result.seen, /touch approved\.txt/, "the pending request is on the page");
      assert.match(result.seen, /why/);
      assert.equal(result.state, "live");
      assert.match(result.after, /Nothing is waiting/);
      assert.match(
        result.after,
        /allow\s+exec\s+touch approved\.txt\s+inbox/,
        "listed as decided, by the inbox",
      );
      assert.ok(statSync(shot).size > 5000, "a real screenshot");
      assert.equal(await fetchStatus(url), 403, "the one-time link does not open the inbox twice");
      await exited;
      assert.match(stdout, /status 0/, stderr);
      assert.ok(
        existsSync(path.join(fx.workdir, "approved.txt")),
        "the approved command ran (and its new file was applied)",
      );
    } finally {
      const gone = new Promise((r) => browser.once("close", r));
      browser.kill("SIGKILL");
      box.kill("SIGKILL");
      await gone;
      rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    }
  });
});
