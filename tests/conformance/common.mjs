// What every conformance harness shares: the observation channel, the shims that let a browser
// SDK run in Node against the emulator (those that observe nothing are in shims.cjs), and the
// command loop.
//
// Protocol (one JSON object per line):
//   stdin, line 1: the config {"rest_url", "relay_url", "token", "fabric_origin", "relay_origin",
//                  "log_level"?, ...}. fabric_origin ("https://fabric.<domain>") and relay_origin
//                  ("wss://<ch>") are the hosts the SDK is expected to derive from the token; the
//                  shims rewrite exactly those to the emulator's loopback URLs and refuse anything else.
//   stdin, then:   commands {"seq": n, "op": ..., ...}; "exit" ends the process.
//   stdout:        observations {"obs": ...}: "ready" once the SDK is connected, "result" for each
//                  command (same seq, ok true/false), "ws_created"/"ws_open"/"ws_close"/"connected"
//                  for the socket's life, "http" for each REST request (method, path, query),
//                  "unexpected_url" when the SDK reaches for a host it should not, "fatal" before a
//                  non-zero exit; each harness adds its own (e.g. "message").
// A harness is a thin driver: it decides nothing; the assertions live in Python.

import { Console } from 'node:console'
import readline from 'node:readline'

import { installWebStorage } from './shims.cjs'

// The SDKs log through console.*: keep stdout for observations only.
globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr })

export const emit = (obs) => {
  process.stdout.write(JSON.stringify(obs) + '\n')
}

export const errorText = (error) => {
  if (error instanceof Error) return error.message
  try {
    return JSON.stringify(error)
  } catch {
    return String(error)
  }
}

// The optional fields of a command that were given, under the SDK's names:
// given(command, { page_size: 'pageSize' }) is { pageSize: command.page_size }, or {} when the
// command has no page_size (an absent field is left out, never passed as undefined).
export const given = (command, names) => {
  const params = {}
  for (const [field, name] of Object.entries(names)) {
    if (command[field] !== undefined) params[name] = command[field]
  }
  return params
}

const trimSlash = (url) => url.replace(/\/+$/, '')

// Installs fetch, WebSocket and web storage for a browser SDK, and `window` unless told not to
// (v4 takes a global `window` for a browser's, with dispatchEvent and more); returns the
// WebSocket class (for SDKs that take a constructor instead of reading globalThis.WebSocket).
export function installShims(config, NodeWebSocket, { window = true } = {}) {
  const restBase = trimSlash(config.rest_url)
  const restOrigin = new URL(config.rest_url).origin
  const fabricOrigin = trimSlash(config.fabric_origin)
  const relayOrigin = trimSlash(config.relay_origin)

  // fetch: the SDK builds https://fabric.<domain>/...; page links may also name the emulator itself.
  const realFetch = globalThis.fetch
  globalThis.fetch = (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input.url ?? String(input))
    let target
    if (url.origin === fabricOrigin) {
      target = restBase + url.pathname + url.search
    } else if (url.origin === restOrigin) {
      target = url.toString()
    } else {
      emit({ obs: 'unexpected_url', api: 'fetch', url: url.toString() })
      return Promise.reject(new TypeError(`harness: refused fetch to ${url.origin}`))
    }
    emit({ obs: 'http', method: init?.method ?? input?.method ?? 'GET', path: url.pathname, query: url.search })
    return realFetch(target, init)
  }

  // WebSocket: Node 20 has none; the URL the SDK asks for is checked, then replaced.
  class LoopbackWebSocket extends NodeWebSocket {
    constructor(url, protocols) {
      const wanted = trimSlash(String(url))
      if (wanted !== relayOrigin) {
        emit({ obs: 'unexpected_url', api: 'WebSocket', url: String(url) })
      }
      super(config.relay_url, protocols)
      emit({ obs: 'ws_created', url: String(url), protocols: protocols ?? null })
      const connectIds = new Map()
      const realSend = this.send.bind(this)
      this.send = (data, ...rest) => {
        try {
          const frame = JSON.parse(String(data))
          if (frame.method === 'signalwire.connect') {
            connectIds.set(frame.id, frame.params?.protocol ?? null)
          }
        } catch {
          // Not JSON: nothing to track.
        }
        return realSend(data, ...rest)
      }
      this.addEventListener('open', () => emit({ obs: 'ws_open' }))
      this.addEventListener('close', (event) => emit({ obs: 'ws_close', code: event.code }))
      this.addEventListener('message', (event) => {
        let frame
        try {
          frame = JSON.parse(String(event.data))
        } catch {
          return
        }
        if (frame.id !== undefined && connectIds.has(frame.id)) {
          emit({
            obs: 'connected',
            requested_protocol: connectIds.get(frame.id),
            protocol: frame.result?.protocol ?? null,
            error: frame.error ?? null,
          })
          connectIds.delete(frame.id)
        }
      })
    }
  }
  globalThis.WebSocket = LoopbackWebSocket

  // window and web storage: read by the SDKs when the token is five-part (a JWE) or to keep state.
  if (window) globalThis.window = globalThis
  installWebStorage()
  return LoopbackWebSocket
}

// Reads the config, runs setup(config) -> {client, version}, then runs each command concurrently
// with runCommand(client, command); "exit" calls shutdown(client, command) and ends the process.
export async function runHarness({ setup, runCommand, shutdown }) {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  const iterator = lines[Symbol.asyncIterator]()
  const first = await iterator.next()
  if (first.done) throw new Error('harness: no config line on stdin')
  const config = JSON.parse(first.value)
  const { client, version } = await setup(config)
  emit({ obs: 'ready', version })

  for (;;) {
    const next = await iterator.next()
    const command = next.done ? { op: 'exit' } : JSON.parse(next.value)
    if (command.op === 'exit') {
      const value = await shutdown(client, command)
      emit({ obs: 'result', seq: command.seq ?? null, op: 'exit', ok: true, value })
      process.exit(0)
    }
    // Commands run concurrently: a slow call must not hold back the next one.
    runCommand(client, command).then(
      (value) => emit({ obs: 'result', seq: command.seq, op: command.op, ok: true, value: value ?? null }),
      (error) => emit({ obs: 'result', seq: command.seq, op: command.op, ok: false, error: errorText(error) }),
    )
  }
}

export function main(harness) {
  runHarness(harness).catch((error) => {
    emit({ obs: 'fatal', error: errorText(error) })
    process.exit(1)
  })
}

// Bounds a promise that may never settle (e.g. disconnect() once the server closed the socket).
export const bounded = (promise, ms) =>
  Promise.race([promise.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), ms))])
