// Drives the official @signalwire/js 3.28.0 client in Node for the Python conformance tests.
//
// The observation protocol and the shims are in ../common.mjs. Commands: "join", "send",
// "get_messages" (follows nextPage() up to max_pages), "subscribe", "unsubscribe", "exit"
// ("disconnect": false skips client.disconnect()). A "message" observation is printed for each
// chat.subscribe callback. This file is a thin driver: it decides nothing; the assertions live
// in Python.

import { createRequire } from 'node:module'

import { bounded, emit, given, installShims, main } from '../common.mjs'

const require = createRequire(import.meta.url)
const { WebSocket: NodeWebSocket } = require('ws')

const plainPage = (page) => ({
  data: page.data,
  hasNext: page.hasNext,
  hasPrev: page.hasPrev,
})

async function runCommand(client, command, subscriptions) {
  switch (command.op) {
    case 'join':
      return client.chat.join({ addressId: command.address_id })
    case 'send':
      return client.chat.sendMessage({
        addressId: command.address_id,
        text: command.text,
        ...given(command, { metadata: 'metadata', details: 'details' }),
      })
    case 'get_messages': {
      const params = { addressId: command.address_id, ...given(command, { page_size: 'pageSize' }) }
      const pages = []
      let page = await client.chat.getMessages(params)
      pages.push(plainPage(page))
      while (page.hasNext && pages.length < (command.max_pages ?? 1)) {
        page = await page.nextPage()
        pages.push(plainPage(page))
      }
      return pages
    }
    case 'subscribe': {
      const addressId = command.address_id
      const handle = await client.chat.subscribe({
        addressId,
        onMessage: (message) => emit({ obs: 'message', address_id: addressId, message }),
      })
      subscriptions.set(command.seq, handle)
      return { subscription: command.seq, methods: Object.keys(handle) }
    }
    case 'unsubscribe': {
      const handle = subscriptions.get(command.subscription)
      subscriptions.delete(command.subscription)
      // 3.28 returns {unsubscribe}; the reference page documents {cancel}.
      return { removed: (handle.cancel ?? handle.unsubscribe)() }
    }
    default:
      throw new Error(`harness: unknown op ${command.op}`)
  }
}

const subscriptions = new Map()

main({
  async setup(config) {
    installShims(config, NodeWebSocket)
    // Required only now: the shims must exist before the SDK builds its session.
    const sdk = require('@signalwire/js')
    const client = await sdk.SignalWire({ token: config.token, logLevel: config.log_level ?? 'warn' })
    return { client, version: require('@signalwire/js/package.json').version }
  },
  runCommand: (client, command) => runCommand(client, command, subscriptions),
  async shutdown(client, command) {
    // disconnect() can wait forever when the server already closed the socket (it only
    // resolves on a close it initiated itself): bound it, and say whether it resolved.
    const disconnected = command.disconnect === false ? false : await bounded(client.disconnect(), 2000)
    return { disconnected }
  },
})
