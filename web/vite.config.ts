import { defineConfig } from "vite";

// Relative base: the same build works at a GitHub Pages project path and on localhost.
export default defineConfig({
  base: "./",
  build: { target: "es2022", chunkSizeWarningLimit: 2000 },
  worker: { format: "es" },
  // The package is a `file:` link to ../wasm/pkg, outside this folder.
  server: { fs: { allow: [".."] } },
});
