%% @doc The words of the cluster's reasons: `{copy_failed, Why}', why a copy of a backup between
%% nodes failed (`emqx_guard_replica', `emqx_guard_replica_receiver'), and `{no_report, Answer}',
%% a node that gave the cluster view no report (`emqx_guard_cluster_view').
%% `emqx_guard_outcome:format_error/1' hands every such reason here, so they stay tagged terms
%% until then.
%%
%% Protocol version 1 (`emqx_guard_proto_v1') carries a failed copy as one line (`{error, Line}':
%% the answers of `start_receiver' and `push_named', the `emqx_guard_copy_result' message, the
%% copy results every node is told): `wire/1' makes that line where an answer leaves this node,
%% `from_wire/1' takes one that arrives (`{copy_failed, Line}', said as it is).
-module(emqx_guard_cluster_errors).

-export([format/2, wire/1, from_wire/1]).

-export_type([why/0]).

-type why() ::
    binary()
    | not_export_name
    | {not_export_name, binary()}
    | {source_not_verified, term()}
    | {copy_not_verified, term()}
    | {crashed, {atom(), term()}}
    | {receiver_crashed, {atom(), term()}}
    | {unexpected_answer, term()}
    | {cannot_read, {file:filename_all(), file:posix()}}
    | {read_error, file:posix()}
    | {receiver_stopped, term()}
    | receiver_silent
    | receiver_finished_early
    | receiver_not_finished
    | no_source
    | {unreachable, {node(), term()}}
    | {remote_failed, {node(), atom(), term()}}
    | {other_content, {binary(), node()}}
    | {kept_not_verified, {binary(), node()}}
    | {cannot_write, {file:filename_all(), node(), file:posix()}}
    | {receiver_failed, {node(), term()}}
    | {write_error, {node(), file:posix()}}
    | {size_sent, {non_neg_integer(), non_neg_integer()}}
    | sender_gave_up
    | {sender_stopped, term()}
    | sender_silent
    | {cannot_sync, {node(), file:posix()}}
    | {cannot_set_mode, file:posix()}
    | {sha256_differs, {binary(), binary()}}
    | {size_arrived, {non_neg_integer(), non_neg_integer()}}
    | {companion_unreadable, term()}
    | {cannot_rename, {file:filename_all(), file:posix()}}.

%% @doc One line for Why, a copy's (`copy_failed') or a node's answer (`no_report').
-spec format(copy_failed | no_report, why() | term()) -> binary().
format(copy_failed, Why) ->
    copy(Why);
format(no_report, Answer) ->
    text("no answer: ~0tP", [Answer, 8]).

copy(Line) when is_binary(Line) ->
    Line;
copy(not_export_name) ->
    <<"not an EMQX export name">>;
copy({not_export_name, Name}) ->
    text("refused: ~ts is not an EMQX export name", [Name]);
copy({source_not_verified, Reason}) ->
    text("the source copy does not verify: ~ts", [detail(Reason)]);
copy({copy_not_verified, Reason}) ->
    text("the copy does not verify: ~ts", [detail(Reason)]);
copy({crashed, {Class, Reason}}) ->
    text("copy crashed: ~tp:~0tP", [Class, Reason, 10]);
copy({receiver_crashed, {Class, Reason}}) ->
    text("receiver crashed: ~tp:~0tP", [Class, Reason, 10]);
copy({unexpected_answer, Other}) ->
    text("unexpected answer: ~0tP", [Other, 8]);
copy({cannot_read, {Path, Posix}}) ->
    text("cannot read ~ts: ~ts", [Path, file:format_error(Posix)]);
copy({read_error, Posix}) ->
    text("read error: ~ts", [file:format_error(Posix)]);
copy({receiver_stopped, Why}) ->
    text("the receiver stopped: ~0tP", [Why, 8]);
copy(receiver_silent) ->
    <<"the receiver did not answer in time">>;
copy(receiver_finished_early) ->
    <<"the receiver finished early">>;
copy(receiver_not_finished) ->
    <<"the receiver did not finish in time">>;
copy(no_source) ->
    <<"no node holds it any more">>;
copy({unreachable, {Node, Reason}}) ->
    text("~ts cannot be reached: ~0tP", [Node, Reason, 6]);
copy({remote_failed, {Node, Class, Reason}}) ->
    text("~ts failed: ~tp:~0tP", [Node, Class, Reason, 8]);
copy(Why) ->
    receiving(Why).

%% The receiving side's reasons.
receiving({other_content, {Name, Node}}) ->
    text("~ts already exists on ~ts with other content", [Name, Node]);
receiving({kept_not_verified, {Name, Node}}) ->
    text("~ts already exists on ~ts and does not verify", [Name, Node]);
receiving({cannot_write, {Dir, Node, Posix}}) ->
    text("cannot write in ~ts on ~ts: ~ts", [Dir, Node, file:format_error(Posix)]);
receiving({receiver_failed, {Node, Why}}) ->
    text("the receiver on ~ts failed: ~0tP", [Node, Why, 8]);
receiving({write_error, {Node, Posix}}) ->
    text("write error on ~ts: ~ts", [Node, file:format_error(Posix)]);
receiving({size_sent, {Sent, Bytes}}) ->
    text("sent ~B bytes but ~B arrived", [Sent, Bytes]);
receiving(sender_gave_up) ->
    <<"the sender gave up">>;
receiving({sender_stopped, Why}) ->
    text("the sender stopped: ~0tP", [Why, 8]);
receiving(sender_silent) ->
    <<"the sender went silent">>;
receiving({cannot_sync, {Node, Posix}}) ->
    text("cannot sync on ~ts: ~ts", [Node, file:format_error(Posix)]);
receiving({cannot_set_mode, Posix}) ->
    text("cannot set mode 0600: ~ts", [file:format_error(Posix)]);
receiving({sha256_differs, {Got, Expected}}) ->
    text("sha256 differs after the copy (~ts, expected ~ts)", [Got, Expected]);
receiving({size_arrived, {Bytes, Size}}) ->
    text("~B bytes arrived, the backup has ~B", [Bytes, Size]);
receiving({companion_unreadable, Why}) ->
    text("the plugins companion cannot be read: ~0tP", [Why, 8]);
receiving({cannot_rename, {Dir, Posix}}) ->
    text("cannot rename into ~ts: ~ts", [Dir, file:format_error(Posix)]);
receiving(Other) ->
    text("~0tP", [Other, 8]).

%% A check's reason (`emqx_guard_backups:check/1'): the core's `{Reason, Detail}' by its line.
detail({Reason, Detail}) when is_atom(Reason), is_binary(Detail) ->
    Detail;
detail(Reason) ->
    emqx_guard_outcome:format_error(Reason).

%% @doc An answer as protocol version 1 carries it: an error as its line, anything else as it is.
-spec wire(T) -> T | {error, binary()}.
wire({error, Reason}) ->
    {error, emqx_guard_outcome:format_error(Reason)};
wire(Answer) ->
    Answer.

%% @doc An error that came from another node (its line, or a tagged reason of a later protocol
%% version) as this node's reason.
-spec from_wire({error, term()}) -> {error, {copy_failed, why()} | term()}.
from_wire({error, Line}) when is_binary(Line) ->
    {error, {copy_failed, Line}};
from_wire({error, _} = Error) ->
    Error.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
