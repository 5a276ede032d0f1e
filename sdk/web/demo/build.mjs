// Bundles the chat page (demo/app.ts, its views and the SDK) into demo/dist/ with esbuild (npm),
// and copies index.html, style.css and contacts.css next to it.
import { build } from "esbuild";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "app.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
for (const f of ["index.html", "style.css"]) copyFileSync(join(here, f), join(out, f));
// The contacts view's stylesheet (contacts.css) is linked by index.html; until it exists an empty one is served.
if (existsSync(join(here, "contacts.css"))) copyFileSync(join(here, "contacts.css"), join(out, "contacts.css"));
else writeFileSync(join(out, "contacts.css"), "/* contacts.css not written yet */\n");
