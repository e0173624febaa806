%% @doc The dead-man watch: warns once when no backup has succeeded for more than two schedule
%% periods, and remembers the last success across restarts.
%%
%% A watch is a value the notification server holds (`emqx_guard_notify' arms the timer and
%% sends the warning). The deadline is the second scheduled fire after the last success plus a
%% grace (the export timeout and a minute, unless `dead_man_grace_ms' is given). A check at or
%% after the deadline gives one `dead_man' warning for that silence; the next success re-arms
%% it. Only the node responsible for scheduled backups (`emqx_guard_election:responsible/0')
%% warns, and a verified copy received from it counts as a success (`seen/2'), so a node that
%% never exports neither raises false warnings nor misses a silence after it takes over.
%%
%% The last success and the silence already warned about persist in the plugin's term file
%% `notify_state' (`emqx_guard_store'). Without it the scheduler's last run counts if it
%% succeeded, else counting starts now.
-module(emqx_guard_dead_man).

-include_lib("kernel/include/logger.hrl").

-export([load/1, succeeded/2, seen/2, check/3, arm/3, last_success/1, deadline/1]).

-record(watch, {
    file :: file:filename_all(),
    grace_ms :: undefined | non_neg_integer(),
    last_success :: integer(),
    warned_for = undefined :: undefined | integer(),
    deadline = undefined :: undefined | integer()
}).
-opaque watch() :: #watch{}.
-export_type([watch/0]).

%% @doc The watch as persisted. Opts: `state_file' (default: the store's `notify_state'),
%% `dead_man_grace_ms' (undefined: the export timeout + 60 s).
-spec load(map()) -> watch().
load(Opts) ->
    File =
        case maps:get(state_file, Opts, undefined) of
            undefined -> emqx_guard_store:path("notify_state");
            F -> F
        end,
    W = #watch{file = File, grace_ms = maps:get(dead_man_grace_ms, Opts, undefined), last_success = now_ms()},
    case emqx_guard_store:read(File) of
        {ok, #{last_success := LS} = M} when is_integer(LS) ->
            W#watch{last_success = LS, warned_for = maps:get(warned_for, M, undefined)};
        _ ->
            case from_last_run() of
                {ok, LS} -> W#watch{last_success = LS};
                none -> save(W)
            end
    end.

%% @doc A backup made here succeeded at AtMs (its start): re-arms the watch.
-spec succeeded(integer(), watch()) -> watch().
succeeded(AtMs, W) ->
    save(W#watch{last_success = AtMs, warned_for = undefined}).

%% @doc A backup made elsewhere in the cluster succeeded at AtMs (a verified copy of it
%% arrived): counts when it is newer than the last success known.
-spec seen(integer(), watch()) -> watch().
seen(AtMs, W = #watch{last_success = Last}) when AtMs > Last ->
    succeeded(AtMs, W);
seen(_AtMs, W) ->
    W.

%% @doc Checks the watch at NowMs under Settings: `{warn, Facts, Watch}' when the deadline has
%% passed without a success, this silence was not reported yet and this node is the one that
%% exports (Facts for the `dead_man' event); else `{quiet, Watch}'.
-spec check(map(), integer(), watch()) -> {warn, map(), watch()} | {quiet, watch()}.
check(Settings, NowMs, W0) ->
    W = W0#watch{deadline = compute_deadline(W0, Settings)},
    #watch{deadline = Deadline, last_success = Last} = W,
    Due =
        is_integer(Deadline) andalso NowMs >= Deadline andalso W#watch.warned_for =/= Last andalso
            emqx_guard_election:responsible() =:= node(),
    case Due of
        false ->
            {quiet, W};
        true ->
            ?LOG_WARNING(#{msg => emqx_guard_no_recent_backup, last_success => Last, deadline => Deadline}),
            Facts = #{time => NowMs, last_success => Last, deadline => Deadline},
            {warn, Facts, save(W#watch{warned_for = Last})}
    end.

%% @doc The deadline under Settings and how long to wait before the next check: until the
%% deadline, at most IntervalMs, at least a second.
-spec arm(map(), pos_integer(), watch()) -> {non_neg_integer(), watch()}.
arm(Settings, IntervalMs, W0) ->
    W = W0#watch{deadline = compute_deadline(W0, Settings)},
    Wait =
        case W#watch.deadline of
            D when is_integer(D), W#watch.warned_for =/= W#watch.last_success ->
                max(1000, min(IntervalMs, D - now_ms()));
            _ ->
                IntervalMs
        end,
    {Wait, W}.

%% @doc The last success known (UTC ms).
-spec last_success(watch()) -> integer().
last_success(#watch{last_success = L}) -> L.

%% @doc The deadline computed at the last check or arm.
-spec deadline(watch()) -> integer() | undefined.
deadline(#watch{deadline = D}) -> D.

%%--------------------------------------------------------------------------------------------

%% The second scheduled fire after the last success, plus the grace.
compute_deadline(#watch{last_success = Last, grace_ms = Grace0}, Settings) ->
    Grace =
        case Grace0 of
            undefined -> maps:get(export_timeout, Settings, 600) * 1000 + 60000;
            G -> G
        end,
    case maps:get(backup_cron, Settings, undefined) of
        undefined ->
            undefined;
        Cron ->
            case emqx_guard_core:next_fires(Cron, emqx_guard_notify_facts:zone_setting(Settings), Last, 2) of
                {ok, [_, Second]} -> Second + Grace;
                _ -> undefined
            end
    end.

from_last_run() ->
    try emqx_guard_run_state:load() of
        #{last_run := #{result := ok, started_at := T}} when is_integer(T) -> {ok, T};
        _ -> none
    catch
        _:_ -> none
    end.

save(W) ->
    Term = #{last_success => W#watch.last_success, warned_for => W#watch.warned_for},
    case emqx_guard_store:write(W#watch.file, Term) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_notify_state_not_saved, reason => Why})
    end,
    W.

now_ms() ->
    erlang:system_time(millisecond).
