/* gateway_cred — the HELLO the gateway sends a node, with the credential
 * of --gateway-node-token-file (gateway.h; docs/cluster.md, "Nodes that
 * need credentials").
 *
 * The name rule: a node with --auth-file knows a client by the name of its
 * line, so NAME:SECRET is sent as that name; a node with --token checks the
 * token only, so the gateway keeps one name per connection
 * ("gateway-q-<pid>-<k>"). A node fences a name's older connection when a
 * new HELLO takes it (PROTOCOL.md §2.3): two gateways sharing one NAME
 * would fence each other on every node, so each gateway needs its own line.
 */
#include <stdio.h>
#include <string.h>

#include "emit.h"
#include "gateway.h"

int gateway_node_cred(const char *cred, char *name, size_t cap, const char **secret)
{
    const char *colon = strchr(cred, ':');
    size_t nl = colon ? (size_t)(colon - cred) : 0;
    if (!colon) { /* a --token: any name will do */
        name[0] = '\0';
        *secret = cred;
        return *cred ? 0 : -1;
    }
    if (nl == 0 || nl > GATEWAY_CRED_NAME_MAX || nl >= cap || !colon[1])
        return -1;
    memcpy(name, cred, nl);
    name[nl] = '\0';
    *secret = colon + 1;
    return 0;
}

int gateway_node_hello(proto_buf *out, const char *cred, int pid, int k)
{
    char name[GATEWAY_CRED_NAME_MAX + 1];
    const char *secret = NULL;
    emit e;
    if (cred && gateway_node_cred(cred, name, sizeof name, &secret) != 0)
        return -1;
    if (!cred || !name[0]) /* one name per connection: a node fences a name's older one */
        snprintf(name, sizeof name, "gateway-q-%d-%d", pid, k);
    emit_msgpack_init(&e, out);
    e.array(&e, 2);
    emit_cstr(&e, "HELLO");
    e.map(&e, secret ? 2 : 1);
    e.key(&e, "client");
    emit_cstr(&e, name);
    if (secret) {
        e.key(&e, "token");
        emit_cstr(&e, secret);
    }
    e.end(&e);
    e.end(&e);
    return e.err ? -1 : 0;
}
