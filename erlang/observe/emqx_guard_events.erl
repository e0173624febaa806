%% @doc The plugin's events on MQTT: each backup outcome (`backup_ok', `backup_failed'; a skipped
%% fire is none), each off-site job's result (`offsite_ok', `offsite_failed'), each restore
%% (`restore_done', `restore_failed') and the dead-man warning (`dead_man') is published once, as
%% JSON, on `$SYS/brokers/<node>/guard/<event>' (QoS 0, not retained), the way EMQX publishes its
%% own `$SYS' messages (`emqx_guard_emqx:publish_sys/2'), so a rule
%% (`SELECT * FROM "$SYS/brokers/+/guard/#"') hands them to any of EMQX's data integrations.
%%
%% The payload is the notifications' facts (`emqx_guard_notify_facts:enrich/2', the same as every
%% channel gets) as the webhook's document has them (`emqx_guard_notify_format:document/2'):
%% `source', `event', `node', `time' and `time_ms', the file, its path, size and SHA-256, the
%% duration, `reason' (the error line), the trigger, zone, next fire, the kept backups, the
%% off-site destination and result, the restore command. No setting is in it, so no secret.
%%
%% The setting `sys_events' (default on) turns it off. Each function returns at once: the facts
%% are gathered and the message published in a process of its own, which never raises into
%% anything; a broker that is missing or refuses it is only logged.
-module(emqx_guard_events).

-include_lib("kernel/include/logger.hrl").

-export([backup_finished/1, offsite_finished/2, dead_man/1, restored/1]).

%% @doc A backup run finished with Outcome (`emqx_guard_outcome'): `backup_ok' or
%% `backup_failed'; nothing for a skipped fire (the node that exported it tells).
-spec backup_finished(emqx_guard_outcome:outcome()) -> ok.
backup_finished(#{result := ok} = Outcome) -> publish(backup_ok, outcome_facts(Outcome));
backup_finished(#{result := failed} = Outcome) -> publish(backup_failed, outcome_facts(Outcome));
backup_finished(_SkippedOrRunning) -> ok.

%% @doc An off-site job for Backup (`undefined': a job of its own, filling in and pruning) ended
%% with Result (`emqx_guard_offsite:result()'), off-site copies going to Destination
%% (`s3://bucket/prefix'): `offsite_ok' or `offsite_failed'.
-spec offsite_finished(emqx_guard_offsite:result(), #{destination := binary(), file => binary()}) -> ok.
offsite_finished(#{result := ok} = Result, Facts) ->
    publish(offsite_ok, Facts#{offsite => Result});
offsite_finished(#{result := failed, error := Error}, Facts) ->
    publish(offsite_failed, Facts#{error => Error}).

%% @doc The dead-man warning with its facts (`time', `last_success', `deadline').
-spec dead_man(map()) -> ok.
dead_man(Facts) ->
    publish(dead_man, Facts).

%% @doc A restore finished (`emqx_guard_restore' calls it): `restore_done' or `restore_failed' with the facts of
%% its outcome, an outcome-like map (`result' `ok' | `failed', `file', `path', `started_at',
%% `duration_ms', `error').
-spec restored(#{result := ok | failed, atom() => term()}) -> ok.
restored(#{result := ok} = Outcome) -> publish(restore_done, outcome_facts(Outcome));
restored(#{result := failed} = Outcome) -> publish(restore_failed, outcome_facts(Outcome)).

%%--------------------------------------------------------------------------------------------

%% An outcome's facts: everything but its reason term (its line is `error').
outcome_facts(Outcome) ->
    maps:without([reason, result], Outcome).

publish(Event, Facts) ->
    Settings = emqx_guard_settings:get(),
    case maps:get(sys_events, Settings, true) of
        true ->
            _ = spawn(fun() -> send(Event, Facts, Settings) end),
            ok;
        false ->
            ok
    end.

send(Event, Facts, Settings) ->
    try
        Document = emqx_guard_notify_format:document(Event, emqx_guard_notify_facts:enrich(Facts, Settings)),
        emqx_guard_emqx:publish_sys(atom_to_binary(Event), emqx_guard_json:encode(Document))
    catch
        Class:Reason ->
            ?LOG_WARNING(#{msg => emqx_guard_event_not_published, event => Event, exception => Class,
                           reason => emqx_guard_redact:term(Reason, [Settings])})
    end.
