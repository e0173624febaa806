%% @doc Which version of the protocol between nodes this node speaks, and which one it uses with
%% each other node. The calls of each version are in `emqx_guard_proto_v1', `_v2', ...: the
%% only modules that call another node. Protocol version N is the calls of `_v1' to `_vN', a
%% call of a later module replacing the one of the same name before it.
%%
%% Each node announces the versions it speaks (`versions/0', called by the others through
%% `emqx_guard_proto_v2:versions/2'); a node of 0.1.0 announces nothing (it has no such
%% function) and speaks version 1. `negotiate/1' asks the given nodes at once and answers, per
%% node, the newest version both sides speak, `{version_mismatch, Theirs, Ours}' when there is
%% none, or `{no_answer, Why}'. Every job that calls other nodes (the election's survey and its
%% lock, copies, the settings push and pull, the cluster view) negotiates first and uses for
%% each node the calls of that version; a node with no common version is skipped and shown as a
%% version mismatch in `guard backup_status', never called. A node whose plugin is not loaded
%% cannot answer either: it counts as version 1 and its version 1 calls say what is wrong there.
%%
%% Test switch (app env `proto_versions', never set in a release): a list of versions to
%% announce and speak instead of the real ones, or `none' to play 0.1.0 (announces nothing,
%% speaks version 1), so a suite can run a mixed-version cluster.
-module(emqx_guard_proto).

-export([versions/0, negotiate/1, speaking/2, at/2, mismatched/1, unanswered/1, settings_for/2]).

-export_type([peer/0, peers/0, reply/1]).

%% The versions this release speaks, oldest first.
-define(SPOKEN, [1, 2]).
-define(HELLO_MS, 5000).
%% The settings keys of 0.1.0: what version 1 carries (that release refuses a key it does not know).
-define(V1_SETTINGS, [
    backup_cron, backup_keep, backup_timezone, backup_catchup, export_timeout, backup_io_limit,
    backup_remote_type, backup_remote_bucket, backup_remote_prefix, backup_remote_region, backup_remote_endpoint,
    backup_remote_access_key, backup_remote_secret_key, backup_remote_path_style, backup_remote_tls_verify,
    backup_remote_ca_file, backup_remote_recipient,
    notify_smtp_server, notify_smtp_port, notify_smtp_tls, notify_smtp_user, notify_smtp_password, notify_from,
    notify_to, notify_webhook_url, notify_tls_verify, notify_ca_file, notify_on_failure, notify_on_success,
    notify_dead_man, notify_slack_url, notify_slack_token, notify_slack_channel, notify_teams_url, notify_feishu_url,
    notify_feishu_secret, notify_dingtalk_url, notify_dingtalk_secret, notify_dingtalk_at_mobiles, notify_wecom_url,
    notify_http_hosts
]).

%% What this node uses with another: a version, or why none.
-type peer() ::
    pos_integer()
    | {version_mismatch, Theirs :: [pos_integer()], Ours :: [pos_integer()]}
    | {no_answer, term()}.
-type peers() :: #{node() => peer()}.
%% One node's answer to a remote call, as `erpc:multicall/5' gives it.
-type reply(T) :: {ok, T} | {throw, term()} | {exit, term()} | {error, term()}.

%% @doc The protocol versions this node speaks, oldest first. Every other node calls it here
%% (`emqx_guard_proto_v2:versions/2'): it never moves to another module or name.
-spec versions() -> [pos_integer()].
versions() ->
    case application:get_env(emqx_guard, proto_versions) of
        %% as 0.1.0: no such function to call
        {ok, none} -> erlang:error(undef);
        _ -> spoken()
    end.

%% @doc What this node uses with each of Nodes (asked at once, 5 s at most; see the module doc).
-spec negotiate([node()]) -> peers().
negotiate([]) ->
    #{};
negotiate(Nodes) ->
    Ours = spoken(),
    maps:from_list(lists:zip(Nodes, [peer(R, Ours) || R <- emqx_guard_proto_v2:versions(Nodes, ?HELLO_MS)])).

peer({ok, Theirs}, Ours) when is_list(Theirs) ->
    common(Theirs, Ours);
peer({error, {exception, undef, _}}, Ours) ->
    %% 0.1.0 (or no plugin loaded there: its calls will say so)
    common([1], Ours);
peer({error, {erpc, Why}}, _Ours) ->
    {no_answer, Why};
peer({Class, Reason}, _Ours) ->
    {no_answer, {Class, tag(Reason)}}.

common(Theirs, Ours) ->
    case [V || V <- Ours, lists:member(V, Theirs)] of
        [] -> {version_mismatch, lists:sort([V || V <- Theirs, is_integer(V)]), Ours};
        Shared -> lists:max(Shared)
    end.

tag(Reason) when is_tuple(Reason), tuple_size(Reason) > 0 -> element(1, Reason);
tag(Reason) -> Reason.

%% @doc The nodes of Peers that this node speaks version Min or newer with, sorted.
-spec speaking(pos_integer(), peers()) -> [node()].
speaking(Min, Peers) ->
    lists:sort([N || {N, V} <- maps:to_list(Peers), is_integer(V), V >= Min]).

%% @doc The nodes of Peers that this node speaks exactly Version with, sorted.
-spec at(pos_integer(), peers()) -> [node()].
at(Version, Peers) ->
    lists:sort([N || {N, V} <- maps:to_list(Peers), V =:= Version]).

%% @doc The nodes of Peers with no version in common, each with `{version_mismatch, Theirs,
%% Ours}', sorted.
-spec mismatched(peers()) -> [{node(), {version_mismatch, [pos_integer()], [pos_integer()]}}].
mismatched(Peers) ->
    lists:sort([{N, P} || {N, P = {version_mismatch, _, _}} <- maps:to_list(Peers)]).

%% @doc The nodes of Peers that did not answer, each with `{no_answer, Why}', sorted.
-spec unanswered(peers()) -> [{node(), {no_answer, term()}}].
unanswered(Peers) ->
    lists:sort([{N, P} || {N, P = {no_answer, _}} <- maps:to_list(Peers)]).

%% @doc Settings as protocol Version carries them: version 1 the keys of 0.1.0 only, and
%% `backup_keep' only while it is a count (`last=N' alone, as 0.1.0 knows it).
-spec settings_for(pos_integer(), map()) -> map().
settings_for(1, Settings) ->
    case maps:with(?V1_SETTINGS, Settings) of
        %% a retention policy other than `last=N' alone: 0.1.0 knows only a count, and keeps its own
        V1 = #{backup_keep := Policy} when is_binary(Policy) -> maps:remove(backup_keep, V1);
        V1 -> V1
    end;
settings_for(_, Settings) ->
    Settings.

%% The versions this node speaks, or plays (the test switch).
spoken() ->
    case application:get_env(emqx_guard, proto_versions) of
        {ok, none} -> [1];
        {ok, Versions} when is_list(Versions) -> Versions;
        _ -> ?SPOKEN
    end.
