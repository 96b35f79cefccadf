import { defineConfig } from "vite";

export default defineConfig({
  build: {
    target: "es2022",
    sourcemap: false,
  },
  server: {
    proxy: {
      "/api": { target: process.env.AIRLOCK_URL ?? "http://127.0.0.1:8080", ws: true },
      // Sign-in and sign-out (single sign-on redirects, the session cookie).
      "/auth": { target: process.env.AIRLOCK_URL ?? "http://127.0.0.1:8080" },
    },
  },
});
