// The CPU benchmark's Node.js partner (bench/cpu_per_event.py): BENCH_EVENTS track events through the Node
// client's Batcher to the sidecar at SIDECAR_ADDRESS, then close (which flushes); prints its own CPU time.
// Usage: node partner.mjs <clients/node folder> (the client must be built: npm run build).
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const { Batcher, SidecarClient } = require(path.resolve(process.argv[2]));

const events = Number(process.env.BENCH_EVENTS);
const client = new SidecarClient({ writeKey: process.env.BENCH_WRITE_KEY });
const started = process.cpuUsage();
const batcher = new Batcher(client, { maxEvents: 1000, maxQueue: 20000 });
for (let i = 0; i < events; i++) {
  await batcher.add({
    type: "track",
    userId: `user-${String(i % 100000).padStart(6, "0")}`,
    event: "Email Opened",
    properties: {
      campaign_id: "cmp_2026_11_spring", email_id: "em_000000123456", email_subject: "Spring sale",
      list_id: "lst_42", link_count: 3, opened_on: "mobile", first_open: true, send_hour: 9,
      template: "promo-v2", variant: "b",
    },
  });
}
await batcher.close();
const used = process.cpuUsage(started);
console.log(`cpu_seconds=${(used.user + used.system) / 1e6}`);
client.close();
