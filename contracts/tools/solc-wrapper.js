#!/usr/bin/env node
// A native-`solc` stand-in over the pinned solcjs (contracts/node_modules/solc), for the tools
// that want a solc binary on the path: forge (`solc = "tools/solc-wrapper.js"` in
// foundry.toml) and slither (`--solc contracts/tools/solc-wrapper.js`). No native solc can be
// downloaded here; solcjs is the same compiler built to WebAssembly, so the bytecode is the
// one `node build.js` produces for the same settings.
//
//   solc-wrapper.js --version          the native version banner (forge and crytic-compile parse it)
//   solc-wrapper.js --standard-json    standard JSON input on stdin -> output on stdout
//
// Other flags the callers add (--allow-paths, --base-path, --include-path, --no-import-callback)
// are accepted; imports the input does not carry are read from --base-path / --include-path,
// the current directory, contracts/ and contracts/node_modules/ (for @openzeppelin/...).
"use strict";
const fs = require("fs");
const path = require("path");

const CONTRACTS = path.join(__dirname, "..");
const solc = require(path.join(CONTRACTS, "node_modules", "solc"));

const args = process.argv.slice(2);

function flagValues(name) {
  const out = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name && i + 1 < args.length) out.push(args[++i]);
    else if (args[i].startsWith(name + "=")) out.push(args[i].slice(name.length + 1));
  }
  return out;
}

if (args.includes("--version") || args.includes("-v")) {
  // solc.version() is e.g. "0.8.30+commit.73712a01.Emscripten.clang"
  const long = solc.version().replace(/\.Emscripten\.clang$/, ".Linux.g++");
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${long}\n`);
  process.exit(0);
}

if (!args.includes("--standard-json")) {
  process.stderr.write("solc-wrapper.js: only --version and --standard-json are supported\n");
  process.exit(1);
}

const roots = [
  ...flagValues("--base-path"),
  ...flagValues("--include-path"),
  process.cwd(),
  CONTRACTS,
  path.join(CONTRACTS, "node_modules"),
];

function findImport(importPath) {
  for (const root of roots) {
    const file = path.isAbsolute(importPath) ? importPath : path.join(root, importPath);
    if (fs.existsSync(file) && fs.statSync(file).isFile()) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `import not found: ${importPath}` };
}

const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const input = Buffer.concat(chunks).toString("utf8");
  const callbacks = args.includes("--no-import-callback") ? {} : { import: findImport };
  process.stdout.write(solc.compile(input, callbacks));
});
