%% @doc What the scheduler keeps across restarts, in `<data_dir>/emqx_guard/state.eterm': the
%% last fired instant (an instant is never run twice, and catch-up starts from it), the last
%% run's outcome (its persisted form, `emqx_guard_outcome:stored/1'), the newest backup result
%% known in the cluster (`cluster_run': this node's last backup or one another node told about,
%% `emqx_guard_outcome:summary/1'; the alarm and health follow it) and the run counts.
%%
%% A missing file is a fresh install; a damaged file, or a damaged field, gives the fresh value
%% for what is damaged plus a warning in the log, never a crash.
-module(emqx_guard_run_state).

-import(emqx_guard_value, [is_instant/1]).

-include_lib("kernel/include/logger.hrl").

-export([fresh/0, load/0, save/1, path/0, fired/2, already_fired/2, record/2, cluster_result/2, newest/1, catchup_ref/1]).

-export_type([run_state/0]).

-type run_state() :: #{
    last_fired := undefined | integer(),
    last_run := undefined | emqx_guard_outcome:outcome(),
    %% absent until a backup result is known: then this node's last run is the newest known
    cluster_run => emqx_guard_outcome:outcome(),
    counts := #{ok := non_neg_integer(), failed := non_neg_integer(), skipped := non_neg_integer()}
}.

%% The state file's format (`emqx_guard_store'): a new key is no new format.
-define(FORMAT, #{tag => emqx_guard_state, version => 1}).

%% @doc The state of a fresh install.
-spec fresh() -> run_state().
fresh() ->
    #{last_fired => undefined, last_run => undefined, counts => #{ok => 0, failed => 0, skipped => 0}}.

%% @doc Instant was fired (it never runs again).
-spec fired(integer(), run_state()) -> run_state().
fired(Instant, State) ->
    State#{last_fired := Instant}.

%% @doc Whether Instant is at or before the last fired instant (then it never runs again).
-spec already_fired(integer(), run_state()) -> boolean().
already_fired(Instant, #{last_fired := Last}) ->
    Last =/= undefined andalso Instant =< Last.

%% @doc A run's outcome counted, and kept as the last run (and the cluster's newest result)
%% unless it was skipped (a fire that another node exports, or one that came while a run was
%% going).
-spec record(emqx_guard_outcome:outcome() | skipped, run_state()) -> run_state().
record(skipped, State = #{counts := Counts = #{skipped := N}}) ->
    State#{counts := Counts#{skipped := N + 1}};
record(#{result := skipped}, State) ->
    record(skipped, State);
record(Outcome = #{result := Result}, State = #{counts := Counts}) ->
    State#{
        last_run := Outcome,
        cluster_run => emqx_guard_outcome:summary(Outcome),
        counts := Counts#{Result := maps:get(Result, Counts) + 1}
    }.

%% @doc A backup result another node told about (`emqx_guard_outcome:summary/1'): kept as the
%% cluster's newest result when it is newer than the one known (`newer'), else nothing changes
%% (`known').
-spec cluster_result(emqx_guard_outcome:outcome(), run_state()) -> {newer | known, run_state()}.
cluster_result(Result, State) ->
    case emqx_guard_outcome:newer(Result, newest(State)) of
        true -> {newer, State#{cluster_run => Result}};
        false -> {known, State}
    end.

%% @doc The newest backup result known in the cluster: the one kept (`cluster_run'), else this
%% node's last run, else `undefined'.
-spec newest(run_state()) -> undefined | emqx_guard_outcome:outcome().
newest(#{cluster_run := Result}) -> Result;
newest(#{last_run := undefined}) -> undefined;
newest(#{last_run := LastRun}) -> emqx_guard_outcome:summary(LastRun).

%% @doc The last instant acted upon: the last fire or the last run's start, whichever is later
%% (a manual backup after a missed instant counts as that backup); `undefined' on a fresh install.
-spec catchup_ref(run_state()) -> integer() | undefined.
catchup_ref(#{last_fired := LastFired, last_run := LastRun}) ->
    Started =
        case LastRun of
            #{started_at := S} -> S;
            undefined -> undefined
        end,
    case [T || T <- [LastFired, Started], is_integer(T)] of
        [] -> undefined;
        Instants -> lists:max(Instants)
    end.

%% @doc The state file.
-spec path() -> file:filename().
path() ->
    emqx_guard_store:path("state.eterm").

%% @doc Stores the state atomically.
-spec save(run_state()) -> ok | {error, emqx_guard_store:error()}.
save(State) ->
    Stored = maps:map(
        fun
            (K, Outcome) when (K =:= last_run orelse K =:= cluster_run), is_map(Outcome) ->
                emqx_guard_outcome:stored(Outcome);
            (_K, V) ->
                V
        end,
        State
    ),
    emqx_guard_store:save(path(), ?FORMAT, Stored).

%% @doc Reads the stored state (see the module doc).
-spec load() -> run_state().
load() ->
    Path = path(),
    case emqx_guard_store:load(Path, ?FORMAT) of
        {ok, Stored} when is_map(Stored) ->
            checked(Path, Stored);
        none ->
            fresh();
        %% a newer plugin's file: said by the store
        newer ->
            fresh();
        Other ->
            ?LOG_WARNING(#{msg => emqx_guard_state_damaged, path => Path, content => Other, action => starting_fresh}),
            fresh()
    end.

checked(Path, Stored) ->
    Fresh = fresh(),
    LastFired = field(Path, last_fired, Stored, fun(T) -> is_instant(T) andalso {ok, T} end),
    LastRun = field(Path, last_run, Stored, fun emqx_guard_outcome:from_stored/1),
    ClusterRun = field(Path, cluster_run, Stored, fun(V) -> summary(emqx_guard_outcome:from_stored(V)) end),
    Counts = maps:map(
        fun(K, Zero) ->
            case maps:get(counts, Stored, #{}) of
                #{K := N} when is_integer(N), N >= 0 -> N;
                #{K := Bad} -> damaged(Path, {counts, K}, Bad, Zero);
                Map when is_map(Map) -> Zero;
                Bad -> damaged(Path, counts, Bad, Zero)
            end
        end,
        maps:get(counts, Fresh)
    ),
    Loaded = #{last_fired => LastFired, last_run => LastRun, counts => Counts},
    case ClusterRun of
        undefined -> Loaded;
        _ -> Loaded#{cluster_run => ClusterRun}
    end.

summary({ok, Outcome}) -> {ok, emqx_guard_outcome:summary(Outcome)};
summary(error) -> error.

%% A stored value that Check accepts (`{ok, Value}'), else `undefined' and a warning.
field(Path, Key, Stored, Check) ->
    case maps:get(Key, Stored, undefined) of
        undefined ->
            undefined;
        Value ->
            case Check(Value) of
                {ok, Checked} -> Checked;
                _ -> damaged(Path, Key, Value, undefined)
            end
    end.

damaged(Path, Key, Value, Default) ->
    ?LOG_WARNING(#{msg => emqx_guard_state_damaged, path => Path, key => Key, content => Value, action => dropped}),
    Default.

