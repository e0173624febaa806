%% @doc Copies of backups on the other core nodes: the sending side, and fetching a backup this
%% node lacks. The receiving side is `emqx_guard_replica_receiver'.
%%
%% A copy streams a backup file from the node that holds it to another node's backup directory:
%% <ol>
%% <li>The sender asks the receiving node to start a receiver (`start_receiver/5' there,
%%     `emqx_guard_proto_v1'): the name must be an EMQX export name; a file of that name already
%%     there with the same sha256 is reported as present (nothing is sent), one with other
%%     content is an error (a backup is never overwritten or renamed).</li>
%% <li>The sender sends the file in chunks of `?CHUNK' bytes, at most `?WINDOW' of them
%%     unacknowledged: never the whole file in one message (the messages: `emqx_guard_proto_v1').</li>
%% <li>The receiver checks, verifies and installs the copy, prunes there and answers the sender
%%     with the result.</li>
%% </ol>
%% Either side gives up when the other dies or stays silent for `?IDLE_MS'. Every copy's result
%% is recorded through `emqx_guard_copies:record/1' on both sides, with its kind (`replicate'
%% for a backup just exported, `catch_up' for a fetched older one) and the backup's creation
%% time (the start of the run that exported it, sent with the copy; else the file's mtime).
%%
%% A backup's plugins companion (`emqx_guard_companion') follows its good copy the same way.
%%
%% A core node that comes back fetches the newest backups it lacks
%% (`emqx_guard_copies:catch_up/1'), asking a node that holds each to push it (`push_named/3').
-module(emqx_guard_replica).

-include_lib("kernel/include/file.hrl").
-include_lib("kernel/include/logger.hrl").

-export([replicate/3, fetch/3]).
%% What other nodes call here (`emqx_guard_proto_v1').
-export([start_receiver/5, push_named/3, list_names/0]).

-define(CHUNK, 256 * 1024).
-define(WINDOW, 4).
-define(IDLE_MS, 60000).
%% How long the receiver may take to verify and install the copy after its last byte.
-define(FINISH_MS, emqx_guard_replica_receiver:finish_ms()).
-define(CALL_MS, 15000).

-type copy_outcome() :: ok | {error, {copy_failed, emqx_guard_cluster_errors:why()}}.

%%--------------------------------------------------------------------
%% Sending
%%--------------------------------------------------------------------

%% @doc Copies a just verified backup (the outcome of its run: `path', `file', `sha256',
%% `started_at' as its creation time) to each of Targets, one after the other, and
%% records each result. Never raises.
-spec replicate(emqx_guard_outcome:outcome(), pos_integer(), [node()]) -> [{node(), copy_outcome()}].
replicate(#{path := Path, file := Name, sha256 := Sha} = Report, Keep, Targets) ->
    Created =
        case Report of
            #{started_at := T} when is_integer(T) -> T;
            _ -> undefined
        end,
    [{Node, push(Path, Name, Sha, Node, Keep, replicate, Created)} || Node <- Targets];
replicate(_Report, _Keep, _Targets) ->
    [].

%% @doc Called on the node holding `Name' (`emqx_guard_proto_v1'): pushes that backup to node
%% `To' (the catch-up). The answer crosses to the asking node: an error as its line
%% (`emqx_guard_cluster_errors:wire/1').
-spec push_named(binary(), node(), pos_integer()) -> ok | {error, binary()}.
push_named(Name, To, Keep) ->
    emqx_guard_cluster_errors:wire(push_kept(Name, To, Keep)).

push_kept(Name, To, Keep) ->
    case emqx_guard_core:is_export_name(Name) of
        false ->
            failed(not_export_name);
        true ->
            Path = filename:join(emqx_guard_emqx:backup_dir(), Name),
            case emqx_guard_replica_receiver:verify_kept(Path) of
                {ok, Sha} -> push(Path, Name, Sha, To, Keep, catch_up, undefined);
                {error, Why} -> failed({source_not_verified, Why})
            end
    end.

%% When the backup was made, as this node's record of it says (its run's export began), goes
%% along as `made_at': the receiver records it, and retention there counts its periods from it.
push(Path, Name, Sha, To, Keep, Kind, Created0) ->
    Created =
        case Created0 of
            undefined -> mtime_ms(Path);
            _ -> Created0
        end,
    Meta0 = #{name => unicode:characters_to_binary(Name), sha256 => Sha, kind => Kind, created_at => Created},
    Meta =
        case made_at(unicode:characters_to_binary(Name)) of
            undefined -> Meta0;
            At -> Meta0#{made_at => At}
        end,
    Outcome =
        try
            send(Path, Meta, To, Keep)
        catch
            Class:Reason ->
                failed({crashed, {Class, Reason}})
        end,
    case Outcome of
        ok -> ?LOG_INFO(#{msg => emqx_guard_backup_copied, file => Name, to => To, kind => Kind});
        {error, Why} ->
            ?LOG_WARNING(#{
                msg => emqx_guard_backup_copy_failed, file => Name, to => To, kind => Kind, reason => emqx_guard_outcome:format_error(Why)
            })
    end,
    ok = emqx_guard_copies:record(emqx_guard_copies:result(To, node(), Name, Kind, Created, Outcome)),
    %% its plugins companion follows a good copy (best effort, not a copy of its own in the results)
    _ = [emqx_guard_companion:also(Path, fun(C) -> companion(C, Meta, To, Keep) end) || Outcome =:= ok],
    Outcome.

%% The plugins companion at Path of the backup Meta describes, sent the same way (a receiver of
%% an older plugin refuses its name: then it stays here only).
companion(Path, Meta, To, Keep) ->
    case emqx_guard_companion:sha256(Path) of
        {ok, Sha} ->
            case send(Path, Meta#{name => filename:basename(Path), sha256 => Sha, companion => true}, To, Keep) of
                ok -> {ok, copied};
                {error, _} = Error -> Error
            end;
        {error, _} = Error ->
            Error
    end.

%% When the backup Name was made, as its verification record here says, if it does.
made_at(Name) ->
    case [At || #{name := N, made_at := At} <- emqx_guard_verifications:records(), N =:= Name] of
        [At | _] -> At;
        [] -> undefined
    end.

send(Path, Meta0, To, Keep) ->
    case file:read_file_info(Path, [{time, posix}]) of
        {ok, #file_info{size = Size, mtime = MTime}} ->
            Meta = Meta0#{size => Size, mtime => MTime},
            Ref = make_ref(),
            Started = remote(To, fun() ->
                emqx_guard_proto_v1:start_receiver(To, Meta, Keep, self(), Ref, node(), ?CALL_MS)
            end),
            case Started of
                {ok, {ok, Receiver}} when is_pid(Receiver) ->
                    stream(Path, Receiver, Ref);
                {ok, {ok, already_present}} ->
                    ok;
                {ok, {error, _} = Error} ->
                    emqx_guard_cluster_errors:from_wire(Error);
                {ok, Other} ->
                    failed({unexpected_answer, Other});
                {error, Why} ->
                    {error, Why}
            end;
        {error, Posix} ->
            failed({cannot_read, {Path, Posix}})
    end.

stream(Path, Receiver, Ref) ->
    MRef = monitor(process, Receiver),
    Result =
        case file:open(Path, [read, raw, binary]) of
            {ok, Fd} ->
                try
                    stream_chunks(Fd, Receiver, Ref, MRef, 0, 0)
                after
                    _ = file:close(Fd)
                end;
            {error, Posix} ->
                Receiver ! {emqx_guard_copy_abort, Ref},
                failed({cannot_read, {Path, Posix}})
        end,
    demonitor(MRef, [flush]),
    Result.

stream_chunks(Fd, Receiver, Ref, MRef, InFlight, Sent) when InFlight >= ?WINDOW ->
    case await_ack(Ref, MRef) of
        ok -> stream_chunks(Fd, Receiver, Ref, MRef, InFlight - 1, Sent);
        {error, _} = Error -> Error
    end;
stream_chunks(Fd, Receiver, Ref, MRef, InFlight, Sent) ->
    case file:read(Fd, ?CHUNK) of
        {ok, Data} ->
            Receiver ! {emqx_guard_copy_chunk, Ref, Data},
            stream_chunks(Fd, Receiver, Ref, MRef, InFlight + 1, Sent + byte_size(Data));
        eof ->
            Receiver ! {emqx_guard_copy_eof, Ref, Sent},
            await_result(Ref, MRef);
        {error, Posix} ->
            Receiver ! {emqx_guard_copy_abort, Ref},
            failed({read_error, Posix})
    end.

await_ack(Ref, MRef) ->
    receive
        {emqx_guard_copy_ack, Ref} -> ok;
        {emqx_guard_copy_result, Ref, Result} -> early_result(Result);
        {'DOWN', MRef, process, _, Why} -> failed({receiver_stopped, Why})
    after ?IDLE_MS ->
        failed(receiver_silent)
    end.

early_result(ok) -> failed(receiver_finished_early);
early_result(Result) -> result(Result).

%% The receiver's result, as protocol version 1 carries it (`ok' or `{error, Line}').
result(ok) -> ok;
result({error, _} = Error) -> emqx_guard_cluster_errors:from_wire(Error);
result(Other) -> failed({unexpected_answer, Other}).

await_result(Ref, MRef) ->
    receive
        {emqx_guard_copy_ack, Ref} -> await_result(Ref, MRef);
        {emqx_guard_copy_result, Ref, Result} -> result(Result);
        {'DOWN', MRef, process, _, Why} -> failed({receiver_stopped, Why})
    after ?FINISH_MS ->
        failed(receiver_not_finished)
    end.

%%--------------------------------------------------------------------
%% Fetching
%%--------------------------------------------------------------------

%% @doc Fetches backup Name to this node from the first of Sources (nodes holding it) that can
%% push it (`push_named/3'). Never raises.
-spec fetch(binary(), [node()], pos_integer()) -> copy_outcome().
fetch(_Name, [], _Keep) ->
    failed(no_source);
fetch(Name, [Source | More], Keep) ->
    Pushed = remote(Source, fun() ->
        emqx_guard_proto_v1:push_named(Source, Name, node(), Keep, ?FINISH_MS + ?IDLE_MS)
    end),
    case Pushed of
        {ok, ok} -> ok;
        _ when More =/= [] -> fetch(Name, More, Keep);
        {ok, {error, _} = Error} -> emqx_guard_cluster_errors:from_wire(Error);
        {ok, Other} -> failed({unexpected_answer, Other});
        {error, _} = Error -> Error
    end.

%%--------------------------------------------------------------------
%% What other nodes call here
%%--------------------------------------------------------------------

%% @doc Called on the receiving node by a sender (`send/4'): prepares a copy of the backup
%% described by Meta from process Sender (`emqx_guard_replica_receiver:start/5'). The answer
%% crosses to the sender: an error as its line (`emqx_guard_cluster_errors:wire/1').
-spec start_receiver(emqx_guard_replica_receiver:meta(), pos_integer(), pid(), reference(), node()) ->
    {ok, pid() | already_present} | {error, binary()}.
start_receiver(Meta, Keep, Sender, Ref, From) ->
    emqx_guard_cluster_errors:wire(emqx_guard_replica_receiver:start(Meta, Keep, Sender, Ref, From)).

%% @doc Called on other nodes by the catch-up (`emqx_guard_copies:catch_up/1'): this node's
%% backups, `emqx_guard_backups:names/0'.
-spec list_names() -> [binary()] | {error, emqx_guard_backups:list_error()}.
list_names() ->
    emqx_guard_backups:names().

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

%% A call to another node: `{ok, Answer}', or `{error, Reason}' when it could not be made.
remote(Node, Call) ->
    try
        {ok, Call()}
    catch
        error:{erpc, Reason} -> failed({unreachable, {Node, Reason}});
        Class:Reason -> failed({remote_failed, {Node, Class, Reason}})
    end.

%% The file's mtime in ms, or now when it cannot be read.
mtime_ms(Path) ->
    case file:read_file_info(Path, [{time, posix}]) of
        {ok, #file_info{mtime = MTime}} -> MTime * 1000;
        {error, _} -> erlang:system_time(millisecond)
    end.

failed(Why) ->
    {error, {copy_failed, Why}}.
