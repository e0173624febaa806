%% @doc Version 2 of the protocol between the plugin on different nodes: what 0.2.0 added to
%% version 1 (`emqx_guard_proto_v1'), and the calls whose arguments or answer changed since.
%% A node that speaks version 2 serves every call of version 1 too, except the ones replaced
%% here; which version a node uses with another: `emqx_guard_proto'.
%%
%% <ul>
%% <li>`versions/2': the versions a node speaks. Its target, `emqx_guard_proto:versions/0',
%%     never moves: every later release answers it there, so any two releases can find the
%%     version they share. A node of 0.1.0 does not have it (`undef'): it speaks version 1.</li>
%% <li>The election's survey and what the nodes tell each other about backups:
%%     `candidacy/2', `result_seen/2', `dead_man_warned/2' (`emqx_guard_election').</li>
%% <li>The settings with every key of this release (version 1 carries the keys of 0.1.0 only,
%%     which that release validates: it refuses a key it does not know): `settings_offer/2' and
%%     `adopt_settings/4' (`emqx_guard_settings_sync').</li>
%% <li>Added in 0.3.0 (a node of 0.2.0 answers `undef', taken as unknown): the EMQX release each
%%     node runs, `emqx_releases/2' (`emqx_guard_emqx:release/0'), for the restore's
%%     check that every running node runs the same major.minor (`emqx_guard_restore_rules').</li>
%% </ul>
%% The functions here only issue the remote call (`erpc'), never decide anything.
-module(emqx_guard_proto_v2).

-export([introduced_in/0]).
-export([
    versions/2,
    candidacy/2,
    result_seen/2,
    dead_man_warned/2,
    settings_offer/2,
    adopt_settings/4,
    emqx_releases/2
]).

%% @doc The plugin version that introduced protocol version 2.
-spec introduced_in() -> string().
introduced_in() ->
    "0.2.0".

%% @doc The protocol versions each node speaks (`emqx_guard_proto:versions/0').
-spec versions([node()], timeout()) -> [emqx_guard_proto:reply([pos_integer()])].
versions(Nodes, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_proto, versions, [], Timeout).

%% @doc Each node's candidacy to export and to watch (`emqx_guard_election:candidacy/0').
-spec candidacy([node()], timeout()) -> [emqx_guard_proto:reply(emqx_guard_election:candidacy())].
candidacy(Nodes, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_election, candidacy, [], Timeout).

%% @doc Tells each node the result of a backup made here (`emqx_guard_election:result_seen/1').
-spec result_seen([node()], emqx_guard_outcome:outcome()) -> ok.
result_seen(Nodes, Summary) ->
    erpc:multicast(Nodes, emqx_guard_election, result_seen, [Summary]).

%% @doc Tells each node that this one sent the dead-man warning for the silence since
%% LastSuccess (`emqx_guard_election:dead_man_warned/1').
-spec dead_man_warned([node()], integer()) -> ok.
dead_man_warned(Nodes, LastSuccess) ->
    erpc:multicast(Nodes, emqx_guard_election, dead_man_warned, [LastSuccess]).

%% @doc Each node's settings, every key, and their version (`emqx_guard_settings_sync:offer/0').
-spec settings_offer([node()], timeout()) ->
    [emqx_guard_proto:reply({emqx_guard_settings_sync:version(), emqx_guard_settings:settings()})].
settings_offer(Nodes, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_settings_sync, offer, [], Timeout).

%% @doc Offers each node Settings (every key) of Version (`emqx_guard_settings_sync:adopt_all/2').
-spec adopt_settings([node()], emqx_guard_settings:settings(), emqx_guard_settings_sync:version(), timeout()) ->
    [emqx_guard_proto:reply(ok | {error, stale | binary()})].
adopt_settings(Nodes, Settings, Version, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_settings_sync, adopt_all, [Settings, Version], Timeout).

%% @doc The EMQX release each node runs (`emqx_guard_emqx:release/0').
-spec emqx_releases([node()], timeout()) ->
    [emqx_guard_proto:reply(#{version := binary(), edition := ce | ee} | unknown)].
emqx_releases(Nodes, Timeout) ->
    erpc:multicall(Nodes, emqx_guard_emqx, release, [], Timeout).
