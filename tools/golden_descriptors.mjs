// Golden face descriptors computed by face-api's own network, for the PyTorch port's test.
//
// Runs the npm package @vladmandic/face-api 1.7.15 (its node build, with the pure-JS CPU
// backend of @tensorflow/tfjs 4.22.0; no native tfjs-node needed, nothing downloaded at run
// time) on every *.png chip (150x150 RGB) in a folder and writes their 128-d descriptors
// as JSON. Run it once from a scratch folder outside the repository:
//
//   mkdir -p /tmp/faceapi-golden && cd /tmp/faceapi-golden && npm init -y
//   npm install @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 \
//       @tensorflow/tfjs-backend-wasm@4.22.0 pngjs@7.0.0
//   node <repo>/tools/golden_descriptors.mjs \
//       --weights <folder with face_recognition_model-weights_manifest.json + .bin> \
//       --chips <repo>/tests/data/recognizer --out <repo>/tests/data/recognizer/golden_face_api.json
//
// The weights folder is node_modules/@vladmandic/face-api/model (or ../shared/weights/face-api-1.7.15,
// the same files). --backend wasm runs the WebAssembly backend instead (a cross-check).
// Packages are resolved from the current directory, so run it where they are installed.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(path.join(process.cwd(), 'noop.js'));
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const { PNG } = require('pngjs');

function parseArgs(argv) {
  const args = { backend: 'cpu' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!['weights', 'chips', 'out', 'backend'].includes(key) || argv[i + 1] === undefined) {
      throw new Error(`usage: --weights DIR --chips DIR --out FILE [--backend cpu|wasm] (bad: ${argv[i]})`);
    }
    args[key] = argv[i + 1];
  }
  for (const key of ['weights', 'chips', 'out']) if (!args[key]) throw new Error(`--${key} is required`);
  return args;
}

function readChip(file) {
  const png = PNG.sync.read(fs.readFileSync(file));
  if (png.width !== 150 || png.height !== 150) throw new Error(`${file}: expected 150x150, got ${png.width}x${png.height}`);
  const rgb = new Int32Array(150 * 150 * 3);
  for (let p = 0; p < 150 * 150; p += 1) {
    for (let c = 0; c < 3; c += 1) rgb[3 * p + c] = png.data[4 * p + c]; // pngjs gives RGBA
  }
  return rgb;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { tf } = faceapi;
  await tf.setBackend(args.backend);
  await tf.ready();
  await faceapi.nets.faceRecognitionNet.loadFromDisk(args.weights);

  const files = fs.readdirSync(args.chips).filter((f) => f.endsWith('.png')).sort();
  if (files.length === 0) throw new Error(`no .png chips in ${args.chips}`);
  const descriptors = {};
  for (const file of files) {
    const input = tf.tensor3d(readChip(path.join(args.chips, file)), [150, 150, 3], 'int32');
    const desc = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(input);
    input.dispose();
    descriptors[file] = Array.from(desc);
  }
  const result = {
    generator: 'tools/golden_descriptors.mjs',
    package: `@vladmandic/face-api@${faceapi.version}`,
    tfjs: tf.version_core,
    backend: tf.getBackend(),
    input: 'RGB uint8 PNG chips as an int32 [150,150,3] tensor -> faceRecognitionNet.computeFaceDescriptor',
    descriptors,
  };
  fs.writeFileSync(args.out, `${JSON.stringify(result, null, 1)}\n`);
  console.log(`wrote ${files.length} descriptors (${result.package}, tfjs ${result.tfjs}, ${result.backend}) to ${args.out}`);
}

main().catch((err) => {
  console.error(err.message || err);
  process.exit(1);
});
