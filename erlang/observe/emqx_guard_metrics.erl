%% @doc The plugin's metrics in EMQX's own Prometheus scrape (`GET /api/v5/prometheus/stats' on
%% every node, no port of our own): a collector in prometheus.erl's `default' registry,
%% registered when the plugin starts and removed when it stops (`register/0', `deregister/0',
%% through the door, `emqx_guard_emqx'). prometheus.erl calls `collect_mf/2' at each scrape; the
%% families are made with its model helpers at run time (`emqx_guard_emqx:metric_family/4'), so
%% nothing of it is compiled in, and without it there is simply no collector. (No `-behaviour'
%% attribute: prometheus.erl is not there when the plugin is built.)
%%
%% The families (`families/0'), named and typed as the Prometheus naming guide says (a unit
%% suffix, `_total' for counters, Unix time in seconds as `_timestamp_seconds'):
%% <ul>
%% <li>`emqx_guard_backup_runs_total{result="ok|failed|skipped"}' (counter): this node's runs
%%     (`skipped': a fire another node exported, or that came while a run was going); from the run
%%     state, so it survives a restart;</li>
%% <li>`emqx_guard_backup_last_success_timestamp_seconds', `emqx_guard_backup_last_size_bytes':
%%     the newest good backup known in the cluster (when it ended, how big);
%%     `emqx_guard_backup_last_run_timestamp_seconds', `emqx_guard_backup_last_duration_seconds':
%%     the newest backup run known in the cluster, good or failed (when it started, how long it
%%     took). Every node shows the cluster's newest, so any node answers "when was the last good
%%     backup";</li>
%% <li>`emqx_guard_backup_next_run_timestamp_seconds': the next scheduled fire;
%%     `emqx_guard_backup_deadline_timestamp_seconds': when the dead-man watch warns if no backup
%%     succeeded by then (the second scheduled fire after the last success, plus a grace);</li>
%% <li>`emqx_guard_backup_healthy': 1, or 0 while the plugin's health check fails (the cluster's
%%     newest backup failed, backups cannot run, the schedule cannot be computed);</li>
%% <li>`emqx_guard_backups_kept', `emqx_guard_backups_kept_bytes': the export files in this
%%     node's backup directory;</li>
%% <li>`emqx_guard_offsite_uploads_total{result="ok|failed"}' (counter): uploads of this node's
%%     backups, ok or given up after their retries; `emqx_guard_offsite_last_success_timestamp_seconds':
%%     when an off-site job last passed; `emqx_guard_offsite_pending': backups still to upload
%%     (only while a destination is set);</li>
%% <li>`emqx_guard_copies_last_result{to}': the last copy of a backup to each node, 1 ok or
%%     0 failed;</li>
%% <li>`emqx_guard_notify_deliveries_total{channel, result="ok|failed"}' (counter): notifications
%%     sent, or given up after their retries, per channel.</li>
%% </ul>
%% A value not known (no good backup yet, no next fire) has no sample; its family is there with
%% its HELP and TYPE. The counters of uploads and deliveries are `emqx_guard_counters''s. A
%% scrape never fails because of the plugin: what cannot be asked (a server that is not
%% running) gives no samples, and a crash here is logged and the family left out.
-module(emqx_guard_metrics).

-include_lib("kernel/include/logger.hrl").

-export([register/0, deregister/0, families/0]).
%% prometheus.erl's `prometheus_collector' callbacks
-export([collect_mf/2, deregister_cleanup/1]).

-export_type([family/0]).

%% A metric family: name, HELP text, type and its samples (labels and value).
-type family() :: {binary(), binary(), counter | gauge, [{[{binary(), binary()}], number()}]}.

%% @doc Registers the collector in EMQX's Prometheus registry (nothing without prometheus.erl).
-spec register() -> ok.
register() ->
    emqx_guard_emqx:register_collector(?MODULE).

%% @doc Removes the collector from EMQX's Prometheus registry.
-spec deregister() -> ok.
deregister() ->
    emqx_guard_emqx:deregister_collector(?MODULE).

%% @doc prometheus.erl's callback at a scrape: each family handed to Callback.
-spec collect_mf(atom(), fun((term()) -> term())) -> ok.
collect_mf(_Registry, Callback) ->
    lists:foreach(
        fun({Name, Help, Type, Samples}) ->
            case emqx_guard_emqx:metric_family(Name, Help, Type, Samples) of
                {ok, Family} -> Callback(Family);
                error -> ok
            end
        end,
        guarded(fun families/0)
    ).

%% @doc prometheus.erl's callback when the collector is removed: nothing to clean up.
-spec deregister_cleanup(atom()) -> ok.
deregister_cleanup(_Registry) ->
    ok.

%% @doc Every family with its samples as they are now (see the module doc).
-spec families() -> [family()].
families() ->
    Status = ask(fun emqx_guard_scheduler:status/0, undefined),
    Counters = emqx_guard_counters:all(),
    lists:append([
        backup_families(Status),
        kept_families(),
        offsite_families(Counters),
        [{<<"emqx_guard_copies_last_result">>, <<"Result of the last copy of a backup to each node: 1 ok, 0 failed.">>, gauge,
          guarded(fun copies/0)}],
        [{<<"emqx_guard_notify_deliveries_total">>,
          <<"Notifications by channel and result: ok (the service accepted it) or failed (given up after the retries).">>,
          counter, guarded(fun() -> deliveries(Counters) end)}]
    ]).

backup_families(Status) ->
    LastRun = from_status(cluster_run, Status),
    Success = from_status(last_success, Status),
    Deadline = maps:get(dead_man_deadline, ask(fun emqx_guard_notify:status/0, #{}), undefined),
    [
        {<<"emqx_guard_backup_runs_total">>,
         <<"Backup runs on this node by result: ok, failed, skipped (another node exported the scheduled time, or a run was still going).">>,
         counter, runs(Status)},
        {<<"emqx_guard_backup_last_success_timestamp_seconds">>,
         <<"When the newest successful backup known in the cluster finished, in seconds since the Unix epoch.">>,
         gauge, value(ended(Success))},
        {<<"emqx_guard_backup_last_run_timestamp_seconds">>,
         <<"When the newest backup run known in the cluster (ok or failed) started, in seconds since the Unix epoch.">>,
         gauge, value(seconds(maps:get(started_at, LastRun, undefined)))},
        {<<"emqx_guard_backup_last_duration_seconds">>,
         <<"How long the newest backup run known in the cluster took, in seconds.">>,
         gauge, value(seconds(maps:get(duration_ms, LastRun, undefined)))},
        {<<"emqx_guard_backup_last_size_bytes">>,
         <<"Size of the newest successful backup known in the cluster, in bytes.">>,
         gauge, value(maps:get(size, Success, undefined))},
        {<<"emqx_guard_backup_next_run_timestamp_seconds">>,
         <<"When the next scheduled backup fires, in seconds since the Unix epoch.">>,
         gauge, value(seconds(from_status(next_fire, Status)))},
        {<<"emqx_guard_backup_deadline_timestamp_seconds">>,
         <<"When the plugin warns that no backup succeeded (two schedule periods after the last success, plus a grace), "
           "in seconds since the Unix epoch.">>,
         gauge, value(seconds(Deadline))},
        {<<"emqx_guard_backup_healthy">>,
         <<"1 while backups are healthy, 0 while the plugin's health check fails (the newest backup failed, backups cannot run, "
           "or the schedule cannot be computed).">>,
         gauge, healthy(Status)}
    ].

kept_families() ->
    Backups =
        case guarded(fun() -> emqx_guard_core:list_backups(emqx_guard_emqx:backup_dir()) end) of
            {ok, L} -> L;
            _ -> []
        end,
    [
        {<<"emqx_guard_backups_kept">>, <<"Backups (EMQX export files) in this node's backup directory.">>, gauge,
         [{[], length(Backups)}]},
        {<<"emqx_guard_backups_kept_bytes">>, <<"Total size of the backups in this node's backup directory, in bytes.">>, gauge,
         [{[], lists:sum([S || #{size := S} <- Backups])}]}
    ].

offsite_families(Counters) ->
    Queue =
        case emqx_guard_offsite_config:enabled(emqx_guard_settings:get()) of
            true -> ask(fun emqx_guard_offsite_queue:status/0, undefined);
            false -> undefined
        end,
    State =
        case Queue of
            #{state := S} -> S;
            _ -> #{}
        end,
    [
        {<<"emqx_guard_offsite_uploads_total">>,
         <<"Off-site uploads of this node's backups by result: ok, or failed (given up after the retries).">>,
         counter, [{[{<<"result">>, R}], maps:get({offsite_upload, binary_to_atom(R)}, Counters, 0)} || R <- [<<"ok">>, <<"failed">>]]},
        {<<"emqx_guard_offsite_last_success_timestamp_seconds">>,
         <<"When an off-site job of this node last passed (every backup due uploaded), in seconds since the Unix epoch.">>,
         gauge, value(seconds(maps:get(last_success, State, undefined)))},
        {<<"emqx_guard_offsite_pending">>,
         <<"Backups of this node waiting to be uploaded off-site (while a destination is set).">>,
         gauge, [{[], length(maps:get(pending, State))} || is_map_key(pending, State)]}
    ].

runs(#{counts := Counts}) ->
    [{[{<<"result">>, atom_to_binary(R)}], maps:get(R, Counts, 0)} || R <- [ok, failed, skipped]];
runs(undefined) ->
    [].

healthy(undefined) ->
    [];
healthy(_Status) ->
    case ask(fun emqx_guard_scheduler:health/0, unknown) of
        ok -> [{[], 1}];
        {error, _} -> [{[], 0}];
        unknown -> []
    end.

copies() ->
    [
        {[{<<"to">>, atom_to_binary(To)}], case Result of ok -> 1; _ -> 0 end}
     || {To, #{result := Result}} <- lists:sort(maps:to_list(emqx_guard_copies:results()))
    ].

%% Every configured channel's counters (0 until counted), and every channel counted before.
deliveries(Counters) ->
    Counted = [K || {notify_delivery, K, _} <- maps:keys(Counters)],
    Channels = lists:usort(emqx_guard_channel:enabled(emqx_guard_settings:get()) ++ Counted),
    [
        {[{<<"channel">>, atom_to_binary(K)}, {<<"result">>, atom_to_binary(R)}], maps:get({notify_delivery, K, R}, Counters, 0)}
     || K <- Channels, R <- [ok, failed]
    ].

from_status(Key, Status) when is_map(Status) ->
    case maps:get(Key, Status, undefined) of
        undefined when Key =:= cluster_run; Key =:= last_success -> #{};
        V -> V
    end;
from_status(Key, undefined) when Key =:= cluster_run; Key =:= last_success ->
    #{};
from_status(_Key, undefined) ->
    undefined.

%% When a backup ended: its start plus its duration.
ended(#{started_at := At, duration_ms := D}) -> seconds(At + D);
ended(#{started_at := At}) -> seconds(At);
ended(_) -> undefined.

seconds(Ms) when is_integer(Ms) -> Ms / 1000;
seconds(_) -> undefined.

value(undefined) -> [];
value(V) -> [{[], V}].

%% A server's answer, or Default when it is not running or does not answer.
ask(Fun, Default) ->
    try
        Fun()
    catch
        exit:_ -> Default
    end.

%% What Fun gives, or no samples (logged) when it fails: a scrape never fails because of us.
guarded(Fun) ->
    try
        Fun()
    catch
        Class:Reason ->
            ?LOG_WARNING(#{msg => emqx_guard_metrics_failed, exception => Class, reason => Reason}),
            []
    end.
