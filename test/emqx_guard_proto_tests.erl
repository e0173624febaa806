%% EUnit: the protocol between nodes is where `docs/design.md' says it is. Read from the
%% compiled plugin (the modules of its .app file): only `emqx_guard_proto_v*' call another node,
%% each of their calls names a function this release exports (the target other nodes call), and
%% version 1 carries the settings keys of 0.1.0, every one still a setting. (The mixed-version
%% cluster itself: emqx_guard_mixed_versions_SUITE.)
-module(emqx_guard_proto_tests).

-include_lib("eunit/include/eunit.hrl").

%% Every way to run code on another node that OTP offers without a pid in hand: erpc, rpc and
%% these functions (the spawn BIFs with a node argument).
-define(REMOTE_MODULES, [erpc, rpc]).
-define(REMOTE_FUNCTIONS, [
    {gen_server, multi_call, 2}, {gen_server, multi_call, 3}, {gen_server, multi_call, 4},
    {gen_server, abcast, 2}, {gen_server, abcast, 3},
    {erlang, spawn, 2}, {erlang, spawn, 4}, {erlang, spawn_link, 2}, {erlang, spawn_link, 4},
    {erlang, spawn_monitor, 2}, {erlang, spawn_monitor, 4}, {erlang, spawn_opt, 3}, {erlang, spawn_opt, 5}
]).

%% xref over the plugin's beams: the callers of erpc/rpc (and of the other remote functions)
%% are the protocol modules, and each protocol module is such a caller.
only_the_protocol_modules_call_other_nodes_test() ->
    Modules = plugin_modules(),
    Server = list_to_atom("emqx_guard_proto_xref_" ++ integer_to_list(erlang:unique_integer([positive]))),
    {ok, _} = xref:start(Server),
    try
        ok = xref:set_default(Server, [{warnings, false}, {verbose, false}]),
        [{ok, _} = xref:add_module(Server, code:which(M), [{builtins, true}]) || M <- Modules],
        {ok, Calls} = xref:q(Server, "XC"),
        Remote = [{From, To} || {From, To = {M, F, A}} <- Calls, remote(M, F, A)],
        Callers = lists:usort([M || {{M, _, _}, _} <- Remote]),
        Proto = [M || M <- Modules, is_proto_version(M)],
        ?assertEqual([emqx_guard_proto_v1, emqx_guard_proto_v2], Proto),
        ?assertEqual(Proto, Callers, [C || C = {{M, _, _}, _} <- Remote, not is_proto_version(M)]),
        %% and every one of their calls reaches another node through erpc
        ?assert(lists:all(fun({_, {M, _, _}}) -> M =:= erpc end, Remote), Remote)
    after
        xref:stop(Server)
    end.

%% Every target a protocol module names (a literal module, function and argument list in its
%% erpc call) is a function this release exports: what a node of any version may call here.
every_call_has_its_target_here_test() ->
    Targets = lists:append([targets(M) || M <- plugin_modules(), is_proto_version(M)]),
    ?assert(length(Targets) >= 17, Targets),
    lists:foreach(
        fun({M, F, A}) ->
            {module, M} = code:ensure_loaded(M),
            ?assert(erlang:function_exported(M, F, A), {M, F, A})
        end,
        Targets
    ),
    %% the one call every release answers where it is
    ?assert(lists:member({emqx_guard_proto, versions, 0}, Targets)),
    ?assertEqual("0.1.0", emqx_guard_proto_v1:introduced_in()),
    ?assertEqual("0.2.0", emqx_guard_proto_v2:introduced_in()).

%% Version 1 carries exactly the settings keys of 0.1.0 (which that release validates: it refuses
%% a key it does not know); each of them is still a setting here, and a key added since travels
%% in version 2 only.
version_1_settings_are_those_of_0_1_0_test() ->
    V1 = emqx_guard_proto:settings_for(1, maps:from_list([{K, x} || K <- emqx_guard_settings:keys()])),
    ?assertEqual(41, map_size(V1)),
    ?assertEqual([], maps:keys(V1) -- emqx_guard_settings:keys()),
    Added = emqx_guard_settings:keys() -- maps:keys(V1),
    ?assertEqual([backup_pins, backup_plugins_max_size, backup_remote_concurrency, backup_remote_keep, notify_on_offsite_failed,
                  notify_on_offsite_ok, sys_events], lists:sort(Added)),
    All = emqx_guard_settings:defaults(),
    ?assertEqual(All, emqx_guard_proto:settings_for(2, All)),
    %% a retention policy 0.1.0 cannot read stays away from it (it keeps its own count); a count goes
    ?assertEqual(#{backup_cron => <<"@daily">>},
                 emqx_guard_proto:settings_for(1, #{backup_cron => <<"@daily">>, backup_keep => <<"last=3 daily=7">>})),
    ?assertEqual(#{backup_keep => 3}, emqx_guard_proto:settings_for(1, #{backup_keep => 3})).

%% A node that cannot be reached is no peer: it is skipped with why, never called.
unreachable_node_has_no_version_test() ->
    Nobody = 'nobody_here@nowhere.invalid',
    Peers = emqx_guard_proto:negotiate([Nobody]),
    ?assertMatch(#{Nobody := {no_answer, _}}, Peers),
    ?assertEqual([], emqx_guard_proto:speaking(1, Peers)),
    ?assertMatch([{Nobody, {no_answer, _}}], emqx_guard_proto:unanswered(Peers)),
    ?assertEqual(#{}, emqx_guard_proto:negotiate([])).

%% This node answers the versions it speaks; a mismatch is one line naming both sides' versions.
versions_and_mismatch_line_test() ->
    ?assertEqual([1, 2], emqx_guard_proto:versions()),
    ?assertEqual(
        <<"version mismatch: it speaks protocol version 3, 4, this node 1, 2">>,
        emqx_guard_outcome:format_error({version_mismatch, [3, 4], [1, 2]})
    ),
    ?assertEqual(
        <<"core_b@h: an older plugin version (protocol 1), which exports only as the lowest core node (core_a@h)">>,
        emqx_guard_outcome:format_excluded([{'core_b@h', {older_plugin, 'core_a@h'}}])
    ).

%%--------------------------------------------------------------------------------------------

plugin_modules() ->
    case application:load(emqx_guard) of
        ok -> ok;
        {error, {already_loaded, emqx_guard}} -> ok
    end,
    {ok, Modules} = application:get_key(emqx_guard, modules),
    lists:sort(Modules).

is_proto_version(M) ->
    lists:prefix("emqx_guard_proto_v", atom_to_list(M)).

remote(M, F, A) ->
    lists:member(M, ?REMOTE_MODULES) orelse lists:member({M, F, A}, ?REMOTE_FUNCTIONS).

%% {Module, Function, Arity} of every erpc:call/multicall/multicast/cast in Module's code whose
%% target is written out.
targets(Module) ->
    {ok, {Module, [{abstract_code, {raw_abstract_v1, Forms}}]}} = beam_lib:chunks(code:which(Module), [abstract_code]),
    lists:usort(lists:append([erpc_targets(F) || F <- Forms])).

erpc_targets(Form) ->
    erl_syntax_lib:fold(
        fun(Node, Acc) ->
            case erl_syntax:revert(Node) of
                {call, _, {remote, _, {atom, _, erpc}, {atom, _, _}}, [_Nodes, {atom, _, M}, {atom, _, F}, Args | _]} ->
                    [{M, F, erl_syntax:list_length(Args)} | Acc];
                _ ->
                    Acc
            end
        end,
        [],
        Form
    ).
