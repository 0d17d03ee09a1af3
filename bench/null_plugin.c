/*
 * null_plugin.c: a Mosquitto plugin that registers the events iotguard
 * registers and decides nothing: every login is accepted, every ACL check
 * allowed, every message and tick ignored.
 *
 * Why this exists: it is the ceiling for any authentication and ACL plugin
 * on this Mosquitto. bench/run.sh runs it next to plain Mosquitto and the
 * iotguard plugin, so the publish figures separate what the broker's plugin
 * interface costs by itself (a callback per PUBLISH, per delivery and per
 * loop pass, a username per client) from what iotguard's own checks cost.
 * Never load it into a broker anyone uses: it lets everyone in.
 *
 * "plugin_opt_thread true" makes it start one thread at init and join it
 * at once, as iotguard's ledger writer does after signing at open (it
 * exits when idle). The broker is then single-threaded again as the kernel
 * sees it, but glibc (2.36) stays in its multi-threaded mode for good:
 * every read() and write() of Mosquitto's loop goes through the
 * cancellation wrappers, and malloc takes its arena locks. That variant is
 * the ceiling for any plugin that ever runs a thread in the broker.
 */
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

static mosquitto_plugin_id_t *plugin_id;

static int allow(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	(void)userdata;
	return MOSQ_ERR_SUCCESS;
}

static const int events[] = {MOSQ_EVT_BASIC_AUTH, MOSQ_EVT_ACL_CHECK, MOSQ_EVT_MESSAGE, MOSQ_EVT_TICK};
#define N_EVENTS (sizeof events / sizeof events[0])

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

static void *thread_main(void *arg)
{
	return arg;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options,
                          int option_count)
{
	for (int i = 0; i < option_count; i++) {
		if (strcmp(options[i].key, "thread") != 0)
			continue;
		if (strcmp(options[i].value, "true") != 0 && strcmp(options[i].value, "false") != 0) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "null plugin: plugin_opt_thread is true or false, not '%s'",
			                     options[i].value);
			return MOSQ_ERR_INVAL;
		}
		pthread_t t;
		if (strcmp(options[i].value, "true") == 0 &&
		    (pthread_create(&t, NULL, thread_main, NULL) != 0 || pthread_join(t, NULL) != 0)) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "null plugin: could not start and join a thread (plugin_opt_thread)");
			return MOSQ_ERR_UNKNOWN;
		}
	}
	plugin_id = identifier;
	*userdata = NULL;
	for (size_t i = 0; i < N_EVENTS; i++) {
		int rc = mosquitto_callback_register(identifier, events[i], allow, NULL, NULL);
		if (rc != MOSQ_ERR_SUCCESS)
			return rc;
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	for (size_t i = 0; i < N_EVENTS; i++)
		mosquitto_callback_unregister(plugin_id, events[i], allow, NULL);
	return MOSQ_ERR_SUCCESS;
}
