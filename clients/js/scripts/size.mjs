// The bundle's min+gzip size: dist/index.js bundled and minified by
// esbuild, then gzipped at level 9. Prints `min+gzip: N bytes (M bytes minified)`.
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import esbuild from "esbuild";

export async function measure() {
  const entry = fileURLToPath(new URL("../dist/index.js", import.meta.url));
  const out = await esbuild.build({ entryPoints: [entry], bundle: true, minify: true, format: "esm", write: false });
  const code = out.outputFiles[0].contents;
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { minified, gzipped } = await measure();
  console.log(`min+gzip: ${gzipped} bytes (${minified} bytes minified)`);
}
