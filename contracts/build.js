#!/usr/bin/env node
// Compiles contracts/src/*.sol with the pinned solcjs (package.json) and writes one JSON
// artifact per contract (ABI + creation bytecode) to secagg/chain/artifacts/, which are
// committed so that Python users need no Node.
//
//   node build.js           rebuild the artifacts
//   node build.js --check   recompile in memory; exit 1 if a committed artifact is stale
//   node build.js --fixture NAME.sol   compile contracts/test/NAME.sol (a test fixture, never
//                           shipped) and print its contracts' {abi, bytecode} as JSON
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const SRC = path.join(__dirname, "src");
const FIXTURES = path.join(__dirname, "test");
const OUT = path.join(__dirname, "..", "secagg", "chain", "artifacts");
const EVM_VERSION = "prague"; // what py-evm (eth-tester) and anvil run
const SETTINGS = {
  evmVersion: EVM_VERSION,
  optimizer: { enabled: true, runs: 50 }, // 50, not 200: RoundCoordinator must stay under EIP-170
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
};

function findImport(importPath) {
  const candidates = [path.join(__dirname, "node_modules", importPath), path.join(SRC, importPath)];
  for (const file of candidates) {
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `import not found: ${importPath}` };
}

function compile(dir = SRC, names = null) {
  const sources = {};
  for (const name of names || fs.readdirSync(dir).filter((f) => f.endsWith(".sol")).sort()) {
    sources[name] = { content: fs.readFileSync(path.join(dir, name), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) console.error(e.formattedMessage);
  if (errors.length) process.exit(2);
  const artifacts = {};
  for (const file of Object.keys(sources)) {
    for (const [name, c] of Object.entries(output.contracts[file] || {})) {
      const artifact = {
        contractName: name,
        sourceName: `contracts/${path.basename(dir)}/${file}`,
        compiler: { name: "solc", version: solc.version(), settings: SETTINGS },
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
      };
      artifacts[`${name}.json`] = JSON.stringify(artifact, null, 1) + "\n";
    }
  }
  return artifacts;
}

if (process.argv[2] === "--fixture") {
  const out = {};
  for (const [file, text] of Object.entries(compile(FIXTURES, [process.argv[3]]))) {
    const { abi, bytecode } = JSON.parse(text);
    out[file.replace(/\.json$/, "")] = { abi, bytecode };
  }
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}

const artifacts = compile();
if (process.argv.includes("--check")) {
  const stale = [];
  const committed = fs.existsSync(OUT) ? fs.readdirSync(OUT).filter((f) => f.endsWith(".json")) : [];
  for (const [file, text] of Object.entries(artifacts)) {
    const target = path.join(OUT, file);
    if (!fs.existsSync(target) || fs.readFileSync(target, "utf8") !== text) stale.push(file);
  }
  for (const file of committed) if (!(file in artifacts)) stale.push(`${file} (no source)`);
  if (stale.length) {
    console.error(`stale artifacts (run \`make contracts\`): ${stale.join(", ")}`);
    process.exit(1);
  }
  console.log(`artifacts up to date (${Object.keys(artifacts).length} contracts, solc ${solc.version()})`);
} else {
  fs.mkdirSync(OUT, { recursive: true });
  for (const file of fs.readdirSync(OUT).filter((f) => f.endsWith(".json"))) fs.unlinkSync(path.join(OUT, file));
  for (const [file, text] of Object.entries(artifacts)) fs.writeFileSync(path.join(OUT, file), text);
  console.log(`wrote ${Object.keys(artifacts).length} artifacts to ${path.relative(process.cwd(), OUT)}`);
}
