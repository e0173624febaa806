%% @doc Which node of the cluster exports a scheduled backup, the guarantee that an instant is
%% exported once, and what the nodes tell each other about it.
%%
%% <b>Candidates.</b> Every node answers its candidacy (`candidacy/0'): whether it can export
%% (`exporter': the plugin runs there, its NIF library is loaded, its scheduler can compute the
%% schedule and this EMQX has a data export) and whether its dead-man watch can run (`watch'),
%% with the newest backup result it knows. `survey/0' asks every running node at once; a node
%% that does not answer in time, or answers with an error, is not a candidate. From the answers:
%% <ul>
%% <li>the responsible node is the lowest-sorted running core node that can export (as EMQX's own
%%     once-per-cluster jobs pick the lowest core, but only among nodes where the plugin really
%%     works); replicants never export; the other cores are `excluded', each with why;</li>
%% <li>the warner, the one node that sends the dead-man warning (`emqx_guard_dead_man'): the
%%     responsible node, or when there is none (or its watch cannot run) the lowest-sorted running
%%     node whose watch runs.</li>
%% </ul>
%%
%% <b>One export per instant.</b> Every node runs its own scheduler and fires every scheduled
%% instant; `run/3' wraps the run of a `scheduled' or `catchup' fire:
%% <ol>
%% <li>Only the responsible node exports (the survey is taken at the fire).</li>
%% <li>It works inside `global:trans({{emqx_guard_backup, Instant}, self()}, Fun, CoreNodes, 0)':
%%     a contended lock is skipped, never waited for. The requester is the calling process: with
%%     the instant as requester two nodes would share the lock (global grants a lock again to
%%     the same requester).</li>
%% <li>Inside the lock the instant is looked up in the set of instants every core node knows to
%%     be exported (each keeps the 64 it recorded last, persisted; a set, not a high-water mark,
%%     so an instant recorded by a node whose clock runs fast blocks nothing else), then recorded
%%     here and told to every node before the export starts.</li>
%% </ol>
%% Any other outcome is a skip (`skip()'), which the run records and never notifies.
%% A `manual' run (`guard backup_now') and a restore's safety backup (`pre_restore') run where
%% they are asked for.
%%
%% <b>What the nodes tell each other.</b> The node that made (or failed) a backup tells every
%% other running node its result (`announce_result/1', `emqx_guard_outcome:summary/1'; the
%% receiving scheduler keeps the newest, `emqx_guard_scheduler:cluster_result/1'); the node that
%% sent a dead-man warning tells every node it did (`announce_warned/1'), so that no other node
%% warns of the same silence.
%%
%% <b>Other releases.</b> The survey first asks which protocol version each node speaks
%% (`emqx_guard_proto:negotiate/1'). A node that cannot be asked its candidacy is taken to do
%% what EMQX's rule for once-per-cluster jobs says, the rule every release agrees on without
%% asking: it exports and warns exactly when it is the lowest running core node. A node of
%% 0.1.0 (version 1, no candidacy) decides so for itself; it is first asked, in version 1,
%% whether its plugin runs, then taken for the responsible node and the warner when it is the
%% lowest core and passed over (`older_plugin') otherwise. A node with no version in common is
%% never called: left to export when it is the lowest core (so the nodes on both sides still
%% export each instant once), passed over (`version_mismatch') otherwise. The lock and the
%% exported instants are the same in every version.
%%
%% The gen_server only keeps the set of exported instants; the election runs in the caller.
%% The other nodes are asked and told through `emqx_guard_proto_v1' and `_v2'.
-module(emqx_guard_election).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, survey/0, run/3]).
%% Asking and telling the other nodes.
-export([ask_candidacies/1, announce_result/1, announce_warned/1]).
%% What other nodes call here (`emqx_guard_proto_v1', `_v2').
-export([candidacy/0, was_exported/1, note_exported/1, result_seen/1, dead_man_warned/1]).
-export([init/1, handle_call/3, handle_cast/2]).

-export_type([skip/0, why_not/0, candidacy/0, survey/0]).

%% Why a node is not a candidate (its text: `emqx_guard_outcome:format_error/1').
-type why_not() ::
    plugin_not_running
    | {no_answer, term()}
    | {nif_not_loaded | nif_failed | schedule_error | export_unsupported, binary()}
    %% speaks protocol version 1 only (0.1.0): exports only as the lowest running core, the node given
    | {older_plugin, node() | undefined}
    | {version_mismatch, Theirs :: [pos_integer()], Ours :: [pos_integer()]}.
-type candidacy() :: #{
    exporter := ok | {error, why_not()},
    watch := ok | {error, why_not()},
    last_result := undefined | emqx_guard_outcome:outcome()
}.
-type survey() :: #{
    responsible := node() | undefined,
    warner := node() | undefined,
    cores := [node()],
    excluded := [{node(), why_not()}],
    newest_result := undefined | emqx_guard_outcome:outcome(),
    %% the protocol version used with each other running node
    peers := emqx_guard_proto:peers()
}.
-type skip() ::
    no_core_node
    | {no_candidate, [{node(), why_not()}]}
    | {not_responsible | lock_held | already_exported, node()}.

-define(SERVER, ?MODULE).
-define(STATE_FILE, "exported.eterm").
-define(FORMAT, #{tag => emqx_guard_exported, version => 1}).
%% How many exported instants each node remembers (the newest recorded).
-define(EXPORTED_MAX, 64).
-define(RPC_TIMEOUT, 5000).

%% @doc Starts the server holding this node's set of exported instants.
-spec start_link() -> gen_server:start_ret().
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @doc Asks every running node its candidacy (this one directly, the others at once, each in
%% the protocol version it speaks) and decides the responsible node and the warner (see the
%% module doc). `newest_result' is the newest backup result any node knows. The one home of
%% these rules.
-spec survey() -> survey().
survey() ->
    Running = emqx_guard_emqx:running_nodes(),
    Cores = emqx_guard_cores:running(),
    Peers = emqx_guard_proto:negotiate(Running -- [node()]),
    Answers = maps:put(node(), candidacy(), candidacies(Peers, first(Cores))),
    Answer = fun(N) -> maps:get(N, Answers, not_answered({no_answer, not_running})) end,
    Exporters = [N || N <- Cores, maps:get(exporter, Answer(N)) =:= ok],
    Watchers = [N || N <- Running, maps:get(watch, Answer(N)) =:= ok],
    Responsible = first(Exporters),
    Warner =
        case lists:member(Responsible, Watchers) of
            true -> Responsible;
            false -> first(Watchers)
        end,
    Newest = lists:foldl(
        fun
            (#{last_result := R}, Acc) when is_map(R) ->
                case emqx_guard_outcome:newer(R, Acc) of
                    true -> R;
                    false -> Acc
                end;
            (_, Acc) ->
                Acc
        end,
        undefined,
        maps:values(Answers)
    ),
    #{
        responsible => Responsible,
        warner => Warner,
        cores => Cores,
        excluded => [{N, Why} || N <- Cores, {error, Why} <- [maps:get(exporter, Answer(N))]],
        newest_result => Newest,
        peers => Peers
    }.

%% @doc This node's candidacy (see the module doc). Never fails: what cannot be asked is the
%% reason it gives.
-spec candidacy() -> candidacy().
candidacy() ->
    Nif =
        case emqx_guard_core:validate(<<"* * * * *">>) of
            {ok, _} -> ok;
            {error, {nif_not_loaded, Detail}} -> {error, {nif_not_loaded, Detail}};
            {error, {_, Detail}} -> {error, {nif_failed, Detail}}
        end,
    Watch =
        case whereis(emqx_guard_notify) of
            undefined -> {error, plugin_not_running};
            _ -> Nif
        end,
    try emqx_guard_scheduler:candidacy() of
        #{exporter := Exporter, last_result := Last} ->
            #{exporter => first_error([Nif, Exporter]), watch => Watch, last_result => Last}
    catch
        exit:{noproc, _} -> (not_answered(plugin_not_running))#{watch => Watch};
        exit:{timeout, _} -> (not_answered({no_answer, timeout}))#{watch => Watch}
    end.

not_answered(Why) ->
    #{exporter => {error, Why}, watch => {error, Why}, last_result => undefined}.

first_error(Checks) ->
    case [E || {error, _} = E <- Checks] of
        [First | _] -> First;
        [] -> ok
    end.

first([N | _]) -> N;
first([]) -> undefined.

%% @doc Runs `Run()' when this node is to export this fire (see the module doc), else returns
%% `{skip, Skip}'. Runs in the caller's process.
-spec run(emqx_guard_outcome:trigger(), integer() | undefined, fun(() -> Result)) -> Result | {skip, skip()}.
run(Trigger, _Instant, Run) when Trigger =:= manual; Trigger =:= pre_restore ->
    Run();
run(_Trigger, Instant, Run) ->
    Here = node(),
    case survey() of
        #{responsible := Here, cores := Cores, peers := Peers} ->
            LockId = {{emqx_guard_backup, Instant}, self()},
            case global:trans(LockId, fun() -> once(Instant, Cores, Peers, Run) end, Cores, 0) of
                aborted -> {skip, {lock_held, Here}};
                Result -> Result
            end;
        #{responsible := undefined, cores := []} ->
            {skip, no_core_node};
        #{responsible := undefined, excluded := Excluded} ->
            {skip, {no_candidate, Excluded}};
        #{responsible := Responsible} ->
            {skip, {not_responsible, Responsible}}
    end.

%% Inside the instant's lock: skip an instant some core node already knows to be exported,
%% otherwise record it everywhere first, then run. (Every version answers these: version 1.)
once(Instant, Cores, Peers, Run) ->
    Asked = [N || N <- emqx_guard_proto:speaking(1, Peers), lists:member(N, Cores)],
    Replies = emqx_guard_proto_v1:was_exported(Asked, Instant, ?RPC_TIMEOUT),
    Known = [{node(), was_exported(Instant)} | [{N, R =:= {ok, true}} || {N, R} <- lists:zip(Asked, Replies)]],
    case [N || {N, true} <- Known] of
        [By | _] ->
            {skip, {already_exported, By}};
        [] ->
            ok = note_exported(Instant),
            ok = emqx_guard_proto_v1:note_exported(emqx_guard_proto:speaking(1, Peers), Instant),
            Run()
    end.

%%--------------------------------------------------------------------------------------------
%% Asking and telling the other nodes
%%--------------------------------------------------------------------------------------------

%% @doc The candidacy of each of Nodes, in their order, as `survey/0' takes it (all asked at
%% once, `?RPC_TIMEOUT' at most). A node where the plugin is not loaded answers
%% `plugin_not_running'; one that does not answer `{no_answer, Why}'.
-spec ask_candidacies([node()]) -> [candidacy()].
ask_candidacies(Nodes) ->
    Answers = candidacies(emqx_guard_proto:negotiate(Nodes), first(emqx_guard_cores:running())),
    [maps:get(N, Answers) || N <- Nodes].

%% Each node's candidacy by the version it speaks: asked (2 and newer); else by the rule of the
%% lowest running core (Lowest): a 0.1.0 node whose plugin answers (version 1) and a node with
%% no version in common export and warn when they are Lowest; none for a node that did not
%% answer.
candidacies(Peers, Lowest) ->
    New = emqx_guard_proto:speaking(2, Peers),
    Old = emqx_guard_proto:at(1, Peers),
    Asked = lists:zip(New, [candidacy_answer(R) || R <- emqx_guard_proto_v2:candidacy(New, ?RPC_TIMEOUT)]),
    Probed = lists:zip(Old, emqx_guard_proto_v1:was_exported(Old, 0, ?RPC_TIMEOUT)),
    Older = [{N, lowest_rule(N, Lowest, {older_plugin, Lowest})} || {N, {ok, Known}} <- Probed, is_boolean(Known)],
    NotRunning = [{N, candidacy_answer(R)} || {N, R} <- Probed, not is_boolean(element(2, R))],
    Mismatched = [{N, lowest_rule(N, Lowest, Why)} || {N, Why} <- emqx_guard_proto:mismatched(Peers)],
    Unanswered = [{N, not_answered(Why)} || {N, Why} <- emqx_guard_proto:unanswered(Peers)],
    maps:from_list(Asked ++ Older ++ NotRunning ++ Mismatched ++ Unanswered).

candidacy_answer({ok, #{exporter := E, watch := W} = A}) ->
    #{exporter => E, watch => W, last_result => maps:get(last_result, A, undefined)};
candidacy_answer({error, {exception, undef, _}}) ->
    not_answered(plugin_not_running);
candidacy_answer({exit, {exception, {noproc, _}}}) ->
    not_answered(plugin_not_running);
candidacy_answer({error, {erpc, Why}}) ->
    not_answered({no_answer, Why});
candidacy_answer({Class, Reason}) ->
    not_answered({no_answer, {Class, tag(Reason)}}).

%% A node not asked: it exports and warns when it is the lowest running core, else not (Why).
lowest_rule(Lowest, Lowest, _Why) ->
    #{exporter => ok, watch => ok, last_result => undefined};
lowest_rule(_Node, _Lowest, Why) ->
    not_answered(Why).

tag(Reason) when is_tuple(Reason), tuple_size(Reason) > 0 -> element(1, Reason);
tag(Reason) -> Reason.

%% @doc Tells every other running node that speaks version 2 the result of a backup made (or
%% failed) here (its `emqx_guard_outcome:summary/1'; 0.1.0 has no such call). Never blocks: the
%% nodes are told from a process of its own.
-spec announce_result(emqx_guard_outcome:outcome()) -> ok.
announce_result(Summary) ->
    _ = spawn(fun() -> emqx_guard_proto_v2:result_seen(others_speaking(2), Summary) end),
    ok.

%% @doc Tells every other running node that speaks version 2 that this node sent the dead-man
%% warning for the silence since LastSuccess. Never blocks.
-spec announce_warned(integer()) -> ok.
announce_warned(LastSuccess) ->
    _ = spawn(fun() -> emqx_guard_proto_v2:dead_man_warned(others_speaking(2), LastSuccess) end),
    ok.

others_speaking(Min) ->
    emqx_guard_proto:speaking(Min, emqx_guard_proto:negotiate(emqx_guard_emqx:running_nodes() -- [node()])).

%%--------------------------------------------------------------------------------------------
%% What other nodes call here
%%--------------------------------------------------------------------------------------------

%% @doc Another node's backup result (`announce_result/1'), handed to this node's scheduler.
-spec result_seen(emqx_guard_outcome:outcome()) -> ok.
result_seen(Summary) when is_map(Summary) ->
    emqx_guard_scheduler:cluster_result(Summary).

%% @doc Another node sent the dead-man warning for the silence since LastSuccess
%% (`announce_warned/1'), handed to this node's watch.
-spec dead_man_warned(integer()) -> ok.
dead_man_warned(LastSuccess) when is_integer(LastSuccess) ->
    emqx_guard_notify:dead_man_warned(LastSuccess).

%% @doc Whether this node knows Instant to be exported (or being exported) by some node.
-spec was_exported(integer()) -> boolean().
was_exported(Instant) when is_integer(Instant) ->
    gen_server:call(?SERVER, {was_exported, Instant}).

%% @doc Records that Instant was (or is being) exported.
-spec note_exported(integer()) -> ok.
note_exported(Instant) when is_integer(Instant) ->
    gen_server:call(?SERVER, {note_exported, Instant}).

%%--------------------------------------------------------------------------------------------

%% @private
init([]) ->
    {ok, load()}.

%% @private
handle_call({was_exported, Instant}, _From, Known) ->
    {reply, lists:member(Instant, Known), Known};
handle_call({note_exported, Instant}, _From, Known) ->
    case lists:member(Instant, Known) of
        true -> {reply, ok, Known};
        false -> {reply, ok, save(lists:sublist([Instant | Known], ?EXPORTED_MAX))}
    end;
handle_call(Request, _From, Known) ->
    {reply, {error, {unknown_call, Request}}, Known}.

%% @private
handle_cast(_Msg, Known) ->
    {noreply, Known}.

%% `<data_dir>/emqx_guard/exported.eterm'; before it existed the set was kept in cluster.eterm.
load() ->
    Path = emqx_guard_store:path(?STATE_FILE),
    case emqx_guard_store:load(Path, ?FORMAT) of
        {ok, Instants} when is_list(Instants) ->
            valid(Instants);
        none ->
            load_older();
        %% a newer plugin's file: said by the store
        newer ->
            [];
        Other ->
            ?LOG_WARNING(#{msg => emqx_guard_exported_state_damaged, path => Path, content => Other}),
            []
    end.

%% The formats 1 and 2 of cluster.eterm (`emqx_guard_settings_sync') held the exported instants.
load_older() ->
    case emqx_guard_store:read(emqx_guard_store:path("cluster.eterm")) of
        {ok, {emqx_guard_cluster, 2, #{exported := Instants}}} when is_list(Instants) -> valid(Instants);
        {ok, {emqx_guard_cluster, 1, #{last_exported := I}}} when is_integer(I) -> [I];
        _ -> []
    end.

valid(Instants) ->
    lists:sublist([I || I <- Instants, is_integer(I)], ?EXPORTED_MAX).

save(Known) ->
    case emqx_guard_store:save(emqx_guard_store:path(?STATE_FILE), ?FORMAT, Known) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_exported_state_not_saved, reason => Why})
    end,
    Known.
