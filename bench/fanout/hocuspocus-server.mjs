// @hocuspocus/server with its defaults (in memory: no extensions), on a free
// loopback port. Prints the bound address as its first stdout line.
import { Server } from '@hocuspocus/server'

const server = new Server({ port: 0, address: '127.0.0.1', quiet: true })
await server.listen()
process.stdout.write(`127.0.0.1:${server.address.port}\n`)
