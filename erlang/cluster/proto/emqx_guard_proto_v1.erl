%% @doc Version 1 of the protocol between the plugin on different nodes: every call the plugin
%% 0.1.0 made on another node, with the same target functions, arguments and answers. A node of
%% that release calls exactly these on every other node, so every later release keeps serving
%% them as they are; a call whose arguments or answer must change gets a new version in a newer
%% `emqx_guard_proto_vN' and stays here unchanged (see `emqx_guard_proto' for which version a
%% node uses with another).
%%
%% The functions here only issue the remote call (`erpc'), never decide anything: errors come
%% back as `erpc' gives them (`multicall/5' results in the order of Nodes, `call/5' raising).
%% Besides the calls, version 1 is:
%% <ul>
%% <li>the stream of a copy after `start_receiver/7' answered `{ok, Pid}': the sender sends Pid
%%     `{emqx_guard_copy_chunk, Ref, Data}' (at most 4 unacknowledged), then
%%     `{emqx_guard_copy_eof, Ref, SentBytes}' or `{emqx_guard_copy_abort, Ref}'; the receiver
%%     answers `{emqx_guard_copy_ack, Ref}' per chunk and `{emqx_guard_copy_result, Ref, ok |
%%     {error, Line}}' at the end (`emqx_guard_replica', `emqx_guard_replica_receiver');</li>
%% <li>the lock of a scheduled instant, `global:trans({{emqx_guard_backup, Instant}, Requester},
%%     Fun, CoreNodes, 0)' (`emqx_guard_election'), and the settings it carries: the keys of
%%     0.1.0 only (`emqx_guard_proto:settings_for/2').</li>
%% </ul>
-module(emqx_guard_proto_v1).

-export([introduced_in/0]).
-export([
    was_exported/3,
    note_exported/2,
    store_copy_result/2,
    request_sync/1,
    list_names/2,
    push_named/5,
    start_receiver/7,
    node_report/2,
    settings_offer/2,
    settings_version/2,
    adopt_settings/4
]).

%% @doc The plugin version that introduced protocol version 1: the first release.
-spec introduced_in() -> string().
introduced_in() ->
    "0.1.0".

%% @doc Whether each node knows Instant as exported (`emqx_guard_election:was_exported/1').
-spec was_exported([node()], integer(), timeout()) -> [emqx_guard_proto:reply(boolean())].
was_exported(Nodes, Instant, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_election, was_exported, [Instant], Timeout).

%% @doc Tells each node that Instant is being exported (`emqx_guard_election:note_exported/1').
-spec note_exported([node()], integer()) -> ok.
note_exported(Nodes, Instant) ->
    erpc:multicast(Nodes, emqx_guard_election, note_exported, [Instant]).

%% @doc Tells each node the result of a copy (`emqx_guard_copies:store/1').
-spec store_copy_result([node()], emqx_guard_copies:copy_result()) -> ok.
store_copy_result(Nodes, Result) ->
    erpc:multicast(Nodes, emqx_guard_copies, store, [Result]).

%% @doc Asks each node to pull settings and fetch the backups it lacks
%% (`emqx_guard_settings_sync:request_sync/0').
-spec request_sync([node()]) -> ok.
request_sync(Nodes) ->
    erpc:multicast(Nodes, emqx_guard_settings_sync, request_sync, []).

%% @doc Each node's backups (`emqx_guard_replica:list_names/0').
-spec list_names([node()], timeout()) -> [emqx_guard_proto:reply([binary()] | {error, binary()})].
list_names(Nodes, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_replica, list_names, [], Timeout).

%% @doc Asks Node, which holds backup Name, to push it to To (`emqx_guard_replica:push_named/3').
-spec push_named(node(), binary(), node(), pos_integer(), timeout()) -> ok | {error, binary()}.
push_named(Node, Name, To, Keep, Timeout) ->
    erpc:call(Node, emqx_guard_replica, push_named, [Name, To, Keep], Timeout).

%% @doc Asks Node to receive a copy from process Sender (`emqx_guard_replica:start_receiver/5').
-spec start_receiver(node(), map(), pos_integer(), pid(), reference(), node(), timeout()) ->
    {ok, pid() | already_present} | {error, binary()}.
start_receiver(Node, Meta, Keep, Sender, Ref, From, Timeout) ->
    erpc:call(Node, emqx_guard_replica, start_receiver, [Meta, Keep, Sender, Ref, From], Timeout).

%% @doc Each node's role, backups and copy results (`emqx_guard_cluster_view:node_report/0').
-spec node_report([node()], timeout()) -> [emqx_guard_proto:reply(map())].
node_report(Nodes, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_cluster_view, node_report, [], Timeout).

%% @doc Each node's settings (the keys of 0.1.0) and their version
%% (`emqx_guard_settings_sync:settings_offer/0').
-spec settings_offer([node()], timeout()) -> [emqx_guard_proto:reply({emqx_guard_settings_sync:version(), map()})].
settings_offer(Nodes, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_settings_sync, settings_offer, [], Timeout).

%% @doc Each node's settings version (`emqx_guard_settings_sync:version/0').
-spec settings_version([node()], timeout()) -> [emqx_guard_proto:reply(emqx_guard_settings_sync:version())].
settings_version(Nodes, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_settings_sync, version, [], Timeout).

%% @doc Offers each node Settings (the keys of 0.1.0 only) of Version
%% (`emqx_guard_settings_sync:adopt/2').
-spec adopt_settings([node()], map(), emqx_guard_settings_sync:version(), timeout()) ->
    [emqx_guard_proto:reply(ok | {error, stale | binary()})].
adopt_settings(Nodes, Settings, Version, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_settings_sync, adopt, [Settings, Version], Timeout).
