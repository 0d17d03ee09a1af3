/* tests/fuzz/fuzz_admin.c: fuzzes the admin command parser.
 *
 * Why this exists: admin requests arrive as MQTT payloads; the plugin checks
 * the sender's role first, but the JSON itself is parsed before any command
 * runs, and an admin client can be buggy or compromised. Invariants: the
 * parsed strings are terminated; a command that parses, rebuilt by
 * ig_admin_build_request (the CLI's encoder), parses to the same command. */
#include <cJSON.h>

#include "fuzz_common.h"
#include "ig_admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const cJSON *obj)
{
	ig_admin_cmd a, b;
	ig_error err;
	memset(&a, 0, sizeof a);
	if (ig_admin_parse_command(obj, &a, &err) != 0)
		return;
	FUZZ_ASSERT(memchr(a.command, '\0', sizeof a.command));
	FUZZ_ASSERT(memchr(a.correlation, '\0', sizeof a.correlation));
	FUZZ_ASSERT(memchr(a.id, '\0', sizeof a.id) && memchr(a.reason, '\0', sizeof a.reason));
	char *req = ig_admin_build_request(&a);
	if (!req)
		return;   /* out of memory, or a kind the CLI never sends */
	cJSON *root = cJSON_Parse(req);
	FUZZ_ASSERT(root);
	cJSON *cmds = cJSON_GetObjectItemCaseSensitive(root, "commands");
	FUZZ_ASSERT(cJSON_IsArray(cmds) && cJSON_GetArraySize(cmds) == 1);
	memset(&b, 0, sizeof b);
	FUZZ_ASSERT(ig_admin_parse_command(cJSON_GetArrayItem(cmds, 0), &b, &err) == 0);
	FUZZ_ASSERT(a.kind == b.kind && strcmp(a.command, b.command) == 0);
	FUZZ_ASSERT(strcmp(a.id, b.id) == 0);
	cJSON_Delete(root);
	free(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *root = cJSON_ParseWithLength((const char *)data, size);
	if (!root)
		return 0;
	cJSON *cmds = cJSON_GetObjectItemCaseSensitive(root, "commands");
	const cJSON *it;
	if (cJSON_IsArray(cmds)) {
		cJSON_ArrayForEach(it, cmds)
			one(it);
	} else {
		one(root);
	}
	cJSON_Delete(root);
	return 0;
}
