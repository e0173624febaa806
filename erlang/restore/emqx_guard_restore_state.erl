%% @doc What the plugin keeps about restores, in `<data_dir>/emqx_guard/restore.eterm'
%% (`emqx_guard_store', format version 1):
%% <ul>
%% <li>`last': the last restore on this node (`guard backup_status' shows it): `started_at',
%%     `duration_ms', `file', `node', `result' (`ok' | `failed'), its `error' line and the step
%%     that failed, the safety backup it took (`safety');</li>
%% <li>`holds': the safety backups retention keeps (`held/0', with the backup a restore is
%%     restoring right now, added to the pins in
%%     `emqx_guard_retention'): each taken before a restore (`hold/2'). A hold ends once a
%%     restore that ended well at or after it is followed by a good backup made after that
%%     restore ended (a later good backup has replaced it); after a failed restore it stays,
%%     so the state from before it is never pruned while the node holds what the failed import
%%     left.</li>
%% </ul>
%% Only the restore writes it (one at a time, `emqx_guard_restore'); a damaged or newer file
%% reads as empty (no holds: retention then keeps the usual backups only) and is logged.
-module(emqx_guard_restore_state).

-include_lib("kernel/include/logger.hrl").

-export([last/0, hold/2, finished/1, held/0]).

-define(FORMAT, #{tag => emqx_guard_restore, version => 1}).
-define(EMPTY, #{last => undefined, holds => [], ok_ends => []}).

%% @doc The last restore on this node, or `undefined'.
-spec last() -> map() | undefined.
last() ->
    maps:get(last, load()).

%% @doc Keeps the safety backup Name (taken at At, Unix ms) until it is replaced (module doc).
-spec hold(binary(), integer()) -> ok | {error, term()}.
hold(Name, At) when is_binary(Name), is_integer(At) ->
    State = #{holds := Holds} = load(),
    save(State#{holds => [#{name => Name, at => At} | [H || H = #{name := N} <- Holds, N =/= Name]]}).

%% @doc The restore Last ended (`result' `ok' | `failed', `started_at', `duration_ms', ...): it
%% becomes `last/0'; a good one starts the end of the holds taken before it.
-spec finished(map()) -> ok | {error, term()}.
finished(Last = #{result := Result, started_at := Started}) ->
    State = #{ok_ends := Ends} = load(),
    End = Started + maps:get(duration_ms, Last, 0),
    Ends1 =
        case Result of
            ok -> lists:sublist(lists:reverse(lists:sort([End | Ends])), 20);
            failed -> Ends
        end,
    save(State#{last => Last, ok_ends => Ends1}).

%% @doc The safety backups retention must keep now.
-spec held() -> [binary()].
held() ->
    #{holds := Holds, ok_ends := Ends} = load(),
    emqx_guard_restore:running() ++ holds(Holds, Ends).

holds(Holds, Ends) ->
    case Holds of
        [] ->
            [];
        _ ->
            Good = [At || #{result := ok, made_at := At} <- emqx_guard_verifications:records(), is_integer(At)],
            Replaced = fun(HoldAt) -> lists:any(fun(E) -> E >= HoldAt andalso lists:any(fun(M) -> M > E end, Good) end, Ends) end,
            [N || #{name := N, at := At} <- Holds, not Replaced(At)]
    end.

%%--------------------------------------------------------------------------------------------

file() ->
    emqx_guard_store:path("restore.eterm").

load() ->
    case emqx_guard_store:load(file(), ?FORMAT) of
        {ok, #{last := _, holds := H, ok_ends := E} = State} when is_list(H), is_list(E) ->
            State;
        none ->
            ?EMPTY;
        Other ->
            ?LOG_WARNING(#{msg => emqx_guard_restore_state_unreadable, file => file(), read => element(1, tag(Other))}),
            ?EMPTY
    end.

tag(T) when is_tuple(T) -> T;
tag(A) -> {A}.

save(State) ->
    emqx_guard_store:save(file(), ?FORMAT, State).
