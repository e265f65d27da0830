// Drives the official @signalwire/js 4.0.0-beta.12 in Node for the Python conformance tests.
//
// The observation protocol and the shims are in ../common.mjs (loaded with import(): this file
// is CommonJS because v4's "require" entry is the one that runs in Node). Commands:
//   "address" {address_id}        -> directory.get$(id): {id, name, displayName, type}
//   "open_messages" {address_id}  -> address.textMessages$ (join + history); from then on every
//        change of the collection prints a "text_messages" observation {address_id, values}
//   "send_text" {address_id, text} -> address.sendText(text)
//   "values" {address_id}         -> the collection's current values
//   "exit" {disconnect?}
// values are {id, text, created}. This file is a thin driver: it decides nothing; the
// assertions live in Python. Node 20 lacks the ES2025 iterator helpers v4 uses; ../shims.cjs
// polyfills them (Node 22 has them).
'use strict'

require('../shims.cjs').installIteratorHelpers()

const plain = (message) => ({ id: message.id, text: message.text, created: message.created })

async function start() {
  const { bounded, emit, installShims, main } = await import('../common.mjs')
  const { WebSocket: NodeWebSocket } = require('ws')
  const { firstValueFrom, filter } = require('rxjs')
  const collections = new Map()
  const addresses = new Map()
  let directory

  const addressOf = async (id) => {
    if (!addresses.has(id)) addresses.set(id, await firstValueFrom(directory.get$(id)))
    return addresses.get(id)
  }

  async function runCommand(client, command) {
    switch (command.op) {
      case 'address': {
        const address = await addressOf(command.address_id)
        return { id: address.id, name: address.name, displayName: address.displayName, type: address.type }
      }
      case 'open_messages': {
        const address = await addressOf(command.address_id)
        const collection = await firstValueFrom(address.textMessages$)
        collections.set(command.address_id, collection)
        collection.values$.subscribe((values) =>
          emit({ obs: 'text_messages', address_id: command.address_id, values: values.map(plain) }),
        )
        return { opened: command.address_id }
      }
      case 'send_text': {
        const address = await addressOf(command.address_id)
        await address.sendText(command.text)
        return { sent: true }
      }
      case 'values':
        return collections.get(command.address_id).values.map(plain)
      default:
        throw new Error(`harness: unknown op ${command.op}`)
    }
  }

  main({
    async setup(config) {
      const LoopbackWebSocket = installShims(config, NodeWebSocket, { window: false })
      // Required only now: the shims must exist before the SDK is loaded.
      const { SignalWire, StaticCredentialProvider, version } = require('@signalwire/js')
      const client = new SignalWire(new StaticCredentialProvider({ token: config.token }), {
        webSocketConstructor: LoopbackWebSocket,
        skipDeviceMonitoring: true,
        logLevel: config.log_level ?? 'warn',
        webRTCApiProvider: {
          RTCPeerConnection: class {},
          mediaDevices: { enumerateDevices: async () => [], addEventListener() {}, removeEventListener() {} },
        },
      })
      await firstValueFrom(client.isConnected$.pipe(filter(Boolean)))
      directory = await firstValueFrom(client.directory$.pipe(filter(Boolean)))
      return { client, version }
    },
    runCommand,
    async shutdown(client, command) {
      const disconnected = command.disconnect === false ? false : await bounded(client.disconnect(), 2000)
      return { disconnected }
    },
  })
}

start().catch((error) => {
  process.stdout.write(JSON.stringify({ obs: 'fatal', error: String(error) }) + '\n')
  process.exit(1)
})
