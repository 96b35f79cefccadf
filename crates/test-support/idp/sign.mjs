#!/usr/bin/env node
// Signs a JWT exactly as told, for tests of token validation (forged, expired, wrongly
// addressed or wrongly signed tokens). Reads one JSON object on stdin:
//   {"header": {...}, "payload": {...}, "jwk": <private JWK>}       RS256/RS384/RS512 with the key
//   {"header": {"alg":"HS256",...}, "payload": {...}, "secret": "..."}  HMAC with a given secret
//   {"header": {"alg":"HS256",...}, "payload": {...}, "jwk": ..., "hmac_with_public_key": true}
//        HMAC keyed with the PEM of the JWK's public key (the classic key-confusion attack)
//   {"header": {"alg":"none"}, "payload": {...}}                      no signature
// and prints the token.
import { createHmac, createPrivateKey, createPublicKey, sign } from "node:crypto";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { header, payload, jwk, secret: given, hmac_with_public_key } = JSON.parse(Buffer.concat(chunks).toString());
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
const input = `${b64(header)}.${b64(payload)}`;
const alg = String(header.alg);
const secret = hmac_with_public_key
  ? createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" })
  : given;
let signature = "";
if (alg.startsWith("RS")) {
  const key = createPrivateKey({ key: jwk, format: "jwk" });
  signature = sign(`sha${alg.slice(2)}`, Buffer.from(input), key).toString("base64url");
} else if (alg.startsWith("HS")) {
  signature = createHmac(`sha${alg.slice(2)}`, secret).update(input).digest("base64url");
} else if (alg !== "none") {
  process.stderr.write(`sign: unsupported alg ${alg}\n`);
  process.exit(64);
}
process.stdout.write(`${input}.${signature}\n`);
