// Drives the official @signalwire/client 0.0.1 in Node for the Python conformance tests.
//
// The observation protocol and the shims are in ../common.mjs. Commands (the group dialect):
//   "join" {from_address_id, address_ids}           -> chat.join({fromAddressId, addressIds})
//   "send" {group_id, from_address_id, text, metadata?, details?} -> chat.sendMessage(...)
//   "get_messages" {group_id, page_size?, next?, prev?} -> chat.getMessages(...), then nextPage()
//        `next` times and prevPage() `prev` times; each page {data, hasNext, hasPrev}
//   "subscribe" {group_id}                          -> chat.subscribe({addressId: group_id, ...});
//        each callback prints a "message" observation
//   "all_messages" {page_size?}                     -> conversation.getMessages(...), one page
//   "conversations"                                 -> conversation.getConversations(), one page
//   "update_token" {token}                          -> updateToken(token)
//   "exit" {disconnect?}
// This file is a thin driver: it decides nothing; the assertions live in Python.

import { createRequire } from 'node:module'

import { bounded, emit, given, installShims, main } from '../common.mjs'

const require = createRequire(import.meta.url)
const { WebSocket: NodeWebSocket } = require('ws')

const plainPage = (page) => ({ data: page.data, hasNext: page.hasNext, hasPrev: page.hasPrev })

async function runCommand(client, command) {
  switch (command.op) {
    case 'join':
      return client.chat.join({ fromAddressId: command.from_address_id, addressIds: command.address_ids })
    case 'send':
      return client.chat.sendMessage({
        groupId: command.group_id,
        fromAddressId: command.from_address_id,
        text: command.text,
        ...given(command, { metadata: 'metadata', details: 'details' }),
      })
    case 'get_messages': {
      const params = { groupId: command.group_id, ...given(command, { page_size: 'pageSize' }) }
      let page = await client.chat.getMessages(params)
      const pages = [plainPage(page)]
      for (let n = 0; n < (command.next ?? 0); n++) {
        page = await page.nextPage()
        pages.push(plainPage(page))
      }
      for (let n = 0; n < (command.prev ?? 0); n++) {
        page = await page.prevPage()
        pages.push(plainPage(page))
      }
      return pages
    }
    case 'subscribe': {
      const groupId = command.group_id
      await client.chat.subscribe({
        addressId: groupId, // 0.0.1 names it addressId; it holds a group id
        onMessage: (message) => emit({ obs: 'message', group_id: groupId, message }),
      })
      return { subscribed: groupId }
    }
    case 'all_messages': {
      const params = command.page_size !== undefined ? { pageSize: command.page_size } : undefined
      return plainPage(await client.conversation.getMessages(params))
    }
    case 'conversations': {
      const page = await client.conversation.getConversations()
      return page.data.map((c) => ({
        groupId: c.groupId,
        name: c.name,
        createdAt: c.createdAt,
        lastMessageAt: c.lastMessageAt,
        metadata: c.metadata,
      }))
    }
    case 'update_token':
      await client.updateToken(command.token)
      return { updated: true }
    default:
      throw new Error(`harness: unknown op ${command.op}`)
  }
}

main({
  async setup(config) {
    installShims(config, NodeWebSocket)
    // Required only now: the shims must exist before the SDK builds its session.
    const sdk = require('@signalwire/client')
    const client = await sdk.SignalWire({ token: config.token, logLevel: config.log_level ?? 'warn' })
    return { client, version: require('@signalwire/client/package.json').version }
  },
  runCommand,
  async shutdown(client, command) {
    const disconnected = command.disconnect === false ? false : await bounded(client.disconnect(), 2000)
    return { disconnected }
  },
})
