%% @doc The dead-man watch: warns once when no backup has succeeded in the cluster for more than
%% two schedule periods, and remembers the last success across restarts.
%%
%% A watch is a value the notification server holds (`emqx_guard_notify' arms the timer and
%% sends the warning). The deadline is the second scheduled fire after the last success plus a
%% grace (the export timeout and a minute, unless `dead_man_grace_ms' is given). The last success
%% is cluster-wide: a backup made here (`succeeded/2'), a good result another node told about or
%% a verified fresh copy received from it (`seen/2') all count.
%%
%% The silence is judged for the whole cluster and reported by ONE node: a check at or after the
%% deadline asks every node (`emqx_guard_election:survey/0'); a newer success some node knows
%% counts first; if the silence stands, only the warner (the exporting node, or when no node can
%% export the lowest node whose watch runs) sends the one `dead_man' warning for it and tells every
%% node it did (`warned_elsewhere/2' there), so a node that takes over later does not warn of the
%% same silence again. A node that is not the warner looks again after the check interval. The
%% next success re-arms the watch.
%%
%% The last success and the silence already warned about persist in the plugin's term file
%% `notify_state' (`emqx_guard_store'; format version 2, the bare map that 0.1.0 wrote read as
%% version 1). Without it the scheduler's last run counts if it succeeded, else counting starts
%% now.
-module(emqx_guard_dead_man).

-include_lib("kernel/include/logger.hrl").

-export([load/1, succeeded/2, seen/2, warned_elsewhere/2, check/3, arm/3, last_success/1, deadline/1]).

-record(watch, {
    file :: file:filename_all(),
    grace_ms :: undefined | non_neg_integer(),
    last_success :: integer(),
    warned_for = undefined :: undefined | integer(),
    %% the silence since this last success is another node's to report (not persisted)
    passed_for = undefined :: undefined | integer(),
    deadline = undefined :: undefined | integer()
}).
-opaque watch() :: #watch{}.
-export_type([watch/0]).

%% The state file's format (`emqx_guard_store'): the bare map of the first release is version 1.
-define(FORMAT, #{
    tag => emqx_guard_notify_state, version => 2, unversioned => 1, upgrades => #{1 => fun(Bare) -> Bare end}
}).

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
    case emqx_guard_store:load(File, ?FORMAT) of
        {ok, #{last_success := LS} = M} when is_integer(LS) ->
            W#watch{last_success = LS, warned_for = maps:get(warned_for, M, undefined)};
        %% none, damaged, or a newer plugin's file (said by the store)
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

%% @doc Another node sent the warning for the silence since LastSuccess: when that covers this
%% watch's silence (its last success is not newer), this watch counts it as warned.
-spec warned_elsewhere(integer(), watch()) -> watch().
warned_elsewhere(LastSuccess, W0 = #watch{last_success = Mine}) when LastSuccess >= Mine ->
    W = seen(LastSuccess, W0),
    save(W#watch{warned_for = W#watch.last_success});
warned_elsewhere(_LastSuccess, W) ->
    W.

%% @doc Checks the watch at NowMs under Settings: `{warn, Facts, Watch}' when the deadline has
%% passed without a success anywhere in the cluster, this silence was not reported yet and this
%% node is the cluster's warner (Facts for the `dead_man' event); else `{quiet, Watch}'. Asks
%% the other nodes only when the deadline has passed here.
-spec check(map(), integer(), watch()) -> {warn, map(), watch()} | {quiet, watch()}.
check(Settings, NowMs, W0) ->
    W = W0#watch{deadline = compute_deadline(W0, Settings)},
    case due(NowMs, W) of
        false ->
            {quiet, W};
        true ->
            #{warner := Warner, newest_result := Newest} = emqx_guard_election:survey(),
            %% a success some node knows and this one missed counts first
            W1 =
                case Newest of
                    #{result := ok, started_at := At} -> seen(At, W);
                    _ -> W
                end,
            W2 = W1#watch{deadline = compute_deadline(W1, Settings)},
            #watch{deadline = Deadline, last_success = Last} = W2,
            case {due(NowMs, W2), Warner =:= node()} of
                {false, _} ->
                    {quiet, W2};
                {true, false} ->
                    {quiet, W2#watch{passed_for = Last}};
                {true, true} ->
                    ?LOG_WARNING(#{msg => emqx_guard_no_recent_backup, last_success => Last, deadline => Deadline}),
                    ok = emqx_guard_election:announce_warned(Last),
                    Facts = #{time => NowMs, last_success => Last, deadline => Deadline},
                    {warn, Facts, save(W2#watch{warned_for = Last})}
            end
    end.

due(NowMs, #watch{deadline = Deadline, last_success = Last, warned_for = Warned}) ->
    is_integer(Deadline) andalso NowMs >= Deadline andalso Warned =/= Last.

%% @doc The deadline under Settings and how long to wait before the next check: until the
%% deadline, at most IntervalMs, at least a second; IntervalMs when this silence was reported
%% or is another node's to report.
-spec arm(map(), pos_integer(), watch()) -> {non_neg_integer(), watch()}.
arm(Settings, IntervalMs, W0) ->
    W = W0#watch{deadline = compute_deadline(W0, Settings)},
    #watch{last_success = Last} = W,
    Wait =
        case W#watch.deadline of
            D when is_integer(D), W#watch.warned_for =/= Last, W#watch.passed_for =/= Last ->
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
    case emqx_guard_store:save(W#watch.file, ?FORMAT, Term) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_notify_state_not_saved, reason => emqx_guard_outcome:format_error(Why)})
    end,
    W.

now_ms() ->
    erlang:system_time(millisecond).
