// The browser shims a browser SDK needs in Node that observe nothing: web storage and the ES2025
// iterator helpers. One copy, loaded by every Node driver of an official SDK:
//   tests/conformance/common.mjs                     (import: web storage for every harness)
//   tests/conformance/sdk-js-4.0.0-beta.12/harness.cjs (require: the iterator helpers for v4)
//   benchmarks/official_v4_coldstart.cjs              (require: both, for v4's cold start)
// CommonJS, so that require() and import both load it whatever the nearest package.json says.
// The shims that rewrite URLs (fetch, WebSocket) are not here: the conformance harnesses check and
// report every URL (common.mjs), the benchmark must not pay for that.
'use strict'

// Node 20 lacks the ES2025 iterator helpers that @signalwire/js 4.x calls on Map iterators
// (`values().map/.find`); Node 22 has them, and then nothing is replaced.
function installIteratorHelpers() {
  const IteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()))
  if (IteratorPrototype.map) return
  IteratorPrototype.map = function* (f) {
    let i = 0
    for (const x of this) yield f(x, i++)
  }
  IteratorPrototype.filter = function* (f) {
    let i = 0
    for (const x of this) if (f(x, i++)) yield x
  }
  IteratorPrototype.find = function (f) {
    let i = 0
    for (const x of this) if (f(x, i++)) return x
  }
  IteratorPrototype.toArray = function () {
    return [...this]
  }
}

// An in-memory Web Storage (the part of the Storage interface the SDKs use).
function makeStorage() {
  const store = new Map()
  return {
    getItem: (key) => (store.has(key) ? store.get(key) : null),
    setItem: (key, value) => void store.set(key, String(value)),
    removeItem: (key) => void store.delete(key),
    clear: () => store.clear(),
    key: (index) => Array.from(store.keys())[index] ?? null,
    get length() {
      return store.size
    },
  }
}

// A fresh, empty sessionStorage and localStorage on globalThis (read by the SDKs when the token
// is five-part, a JWE, or to keep state).
function installWebStorage() {
  globalThis.sessionStorage = makeStorage()
  globalThis.localStorage = makeStorage()
}

module.exports = { installIteratorHelpers, installWebStorage, makeStorage }
