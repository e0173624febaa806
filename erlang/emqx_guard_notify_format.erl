%% @doc The wording of every notification: e-mail subject and body, and the webhook's JSON.
%% Pure: everything it shows comes from the facts map.
%%
%% Events: `backup_ok', `backup_failed', `dead_man' (no backup succeeded for more than two
%% schedule periods) and `test'. Facts (all optional; what is missing is left out):
%% <ul>
%% <li>`node' (atom or binary), `zone' (IANA name), `trigger' (atom);</li>
%% <li>instants in UTC milliseconds: `time' (the run's start, or when the message was made),
%%     `next_fire', `last_success', `deadline'; `offsets' maps each of these keys to the zone's
%%     UTC offset in seconds at that instant (missing means UTC);</li>
%% <li>`file' (the export's name), `path' (its full path), `size' (bytes), `sha256',
%%     `duration_ms', `reason' (why it failed, one line);</li>
%% <li>`kept': the backups now kept, `[#{name, size, mtime}]' newest first.</li>
%% </ul>
-module(emqx_guard_notify_format).

-export([subject/2, body/2, webhook/2, human_size/1, local_time/3, restore_command/1]).

-type event() :: backup_ok | backup_failed | dead_man | test.
-type facts() :: #{atom() => term()}.
-export_type([event/0, facts/0]).

-define(TAG, "[emqx_guard] ").
-define(MAX_REASON, 160).

%% @doc The subject line, e.g. `[emqx_guard] backup OK on emqx@host: emqx-export-...tar.gz (1.5 MiB)'.
-spec subject(event(), facts()) -> binary().
subject(backup_ok, F) ->
    fmt(?TAG "backup OK on ~ts: ~ts (~ts)", [node_text(F), get_text(file, F, <<"?">>), size_text(F)]);
subject(backup_failed, F) ->
    fmt(?TAG "backup FAILED on ~ts: ~ts", [node_text(F), short_reason(F)]);
subject(dead_man, F) ->
    Since =
        case maps:get(last_success, F, undefined) of
            undefined -> <<"(none recorded)">>;
            _ -> when_text(last_success, F)
        end,
    fmt(?TAG "backup MISSING on ~ts: none succeeded since ~ts", [node_text(F), Since]);
subject(test, F) ->
    fmt(?TAG "test message from ~ts", [node_text(F)]).

%% @doc The plain-text body: one fact a line, then the kept backups and the restore command.
-spec body(event(), facts()) -> binary().
body(Event, F) ->
    Head =
        case Event of
            backup_ok -> "emqx_guard: the backup succeeded.";
            backup_failed -> "emqx_guard: the backup FAILED. Earlier backups are kept.";
            dead_man -> "emqx_guard: no backup has succeeded for more than two schedule periods.";
            test -> "emqx_guard: this is a test message; notifications reach you."
        end,
    Lines =
        [line("Node", node_text(F))] ++
            opt_line("Time", time, F, fun(_) -> when_text(time, F) end) ++
            opt_line("Trigger", trigger, F, fun text/1) ++
            opt_line("Error", reason, F, fun indented/1) ++
            opt_line("File", path, F, fun text/1, opt_line("File", file, F, fun text/1)) ++
            opt_line("Size", size, F, fun(S) -> fmt("~ts (~b bytes)", [human_size(S), S]) end) ++
            opt_line("SHA-256", sha256, F, fun text/1) ++
            opt_line("Duration", duration_ms, F, fun duration_text/1) ++
            opt_line("Last success", last_success, F, fun(_) -> when_text(last_success, F) end) ++
            opt_line("Expected by", deadline, F, fun(_) -> when_text(deadline, F) end) ++
            opt_line("Next backup", next_fire, F, fun(_) -> when_text(next_fire, F) end),
    Kept =
        case maps:get(kept, F, undefined) of
            L when is_list(L) ->
                [
                    "\n",
                    fmt("Backups now kept (~b):~n", [length(L)]),
                    [kept_line(B, F) || B <- L]
                ];
            _ ->
                []
        end,
    Restore =
        case {Event, maps:get(path, F, maps:get(file, F, undefined))} of
            {backup_ok, P} when P =/= undefined ->
                [
                    "\nTo restore this backup, run on ",
                    node_text(F),
                    " (the file is on that node's disk):\n  ",
                    restore_command(P),
                    "\n"
                ];
            _ ->
                []
        end,
    iolist_to_binary([Head, "\n\n", Lines, Kept, Restore]).

%% @doc The webhook's JSON document: `event', `summary' (the subject, for chat receivers that
%% show one text field), `text' (the body) and every fact, instants both as UTC milliseconds
%% (`*_ms') and as local ISO 8601 text with offset.
-spec webhook(event(), facts()) -> binary().
webhook(Event, F) ->
    Times = maps:from_list(
        lists:append([
            [
                {atom_to_binary(K), local_time(V, offset(K, F), <<"T">>)},
                {<<(atom_to_binary(K))/binary, "_ms">>, V}
            ]
         || K <- [time, next_fire, last_success, deadline],
            V <- [maps:get(K, F, undefined)],
            is_integer(V)
        ])
    ),
    Plain = maps:from_list([
        {atom_to_binary(K), json_value(maps:get(K, F))}
     || K <- [file, path, size, sha256, duration_ms, reason, zone, trigger],
        maps:is_key(K, F),
        maps:get(K, F) =/= undefined
    ]),
    Kept =
        case maps:get(kept, F, undefined) of
            L when is_list(L) ->
                #{
                    <<"kept">> => [
                        #{
                            <<"name">> => maps:get(name, B, null),
                            <<"size">> => maps:get(size, B, null),
                            <<"mtime_ms">> => maps:get(mtime, B, null)
                        }
                     || B <- L
                    ]
                };
            _ ->
                #{}
        end,
    Restore =
        case {Event, maps:get(path, F, maps:get(file, F, undefined))} of
            {backup_ok, P} when P =/= undefined -> #{<<"restore_command">> => restore_command(P)};
            _ -> #{}
        end,
    Doc = lists:foldl(fun maps:merge/2, #{}, [
        Plain,
        Times,
        Kept,
        Restore,
        #{
            <<"source">> => <<"emqx_guard">>,
            <<"event">> => atom_to_binary(Event),
            <<"node">> => node_text(F),
            <<"summary">> => subject(Event, F),
            <<"text">> => body(Event, F)
        }
    ]),
    emqx_guard_json:encode(Doc).

%% @doc `emqx_ctl data import <Path>', the command that restores a backup.
-spec restore_command(binary() | string()) -> binary().
restore_command(Path) ->
    iolist_to_binary(["emqx_ctl data import ", text(Path)]).

%% @doc Bytes in binary units, one decimal from KiB on: `512 B', `1.5 MiB'.
-spec human_size(non_neg_integer()) -> binary().
human_size(N) when N < 1024 ->
    fmt("~b B", [N]);
human_size(N) ->
    human_size(N / 1024, ["KiB", "MiB", "GiB", "TiB"]).

human_size(X, [U]) ->
    fmt("~.1f ~ts", [X, U]);
human_size(X, [U | _]) when X < 1024 ->
    fmt("~.1f ~ts", [X, U]);
human_size(X, [_ | Us]) ->
    human_size(X / 1024, Us).

%% @doc An instant as local ISO 8601 text with the offset, seconds precision:
%% `2024-05-05 12:00:03+02:00' (Sep `<<" ">>') or `2024-05-05T12:00:03+02:00' (Sep `<<"T">>').
-spec local_time(integer(), integer(), binary()) -> binary().
local_time(UnixMs, OffsetSecs, Sep) ->
    Secs = UnixMs div 1000 + OffsetSecs,
    {{Y, Mo, D}, {H, Mi, S}} = calendar:gregorian_seconds_to_datetime(Secs + 62167219200),
    Sign =
        case OffsetSecs < 0 of
            true -> $-;
            false -> $+
        end,
    Abs = abs(OffsetSecs),
    fmt("~4..0b-~2..0b-~2..0b~ts~2..0b:~2..0b:~2..0b~c~2..0b:~2..0b", [
        Y, Mo, D, Sep, H, Mi, S, Sign, Abs div 3600, (Abs rem 3600) div 60
    ]).

%%--------------------------------------------------------------------------------------------

when_text(Key, F) ->
    T = local_time(maps:get(Key, F), offset(Key, F), <<" ">>),
    case maps:get(zone, F, undefined) of
        undefined -> T;
        Zone -> fmt("~ts (~ts)", [T, text(Zone)])
    end.

offset(Key, F) ->
    maps:get(Key, maps:get(offsets, F, #{}), 0).

kept_line(B, F) ->
    Name = text(maps:get(name, B, <<"?">>)),
    Size =
        case maps:get(size, B, undefined) of
            S when is_integer(S) -> human_size(S);
            _ -> <<"?">>
        end,
    Mark =
        case maps:get(file, F, undefined) of
            Name -> <<"  (this run)">>;
            _ -> <<>>
        end,
    fmt("  ~ts  ~ts~ts~n", [Name, Size, Mark]).

node_text(F) ->
    text(maps:get(node, F, node())).

size_text(F) ->
    case maps:get(size, F, undefined) of
        S when is_integer(S) -> human_size(S);
        _ -> <<"size unknown">>
    end.

short_reason(F) ->
    R = text(maps:get(reason, F, <<"unknown reason">>)),
    One = iolist_to_binary(lists:join(<<" ">>, string:lexemes(R, "\r\n"))),
    case string:length(One) > ?MAX_REASON of
        true -> <<(string:slice(One, 0, ?MAX_REASON - 3))/binary, "...">>;
        false -> One
    end.

duration_text(Ms) when Ms < 1000 -> fmt("~b ms", [Ms]);
duration_text(Ms) when Ms < 60000 -> fmt("~.1f s", [Ms / 1000]);
duration_text(Ms) -> fmt("~b min ~b s", [Ms div 60000, (Ms rem 60000) div 1000]).

%% Continuation lines of a multi-line value line up under its first line.
indented(V) ->
    iolist_to_binary(lists:join(<<"\n              ">>, string:split(text(V), "\n", all))).

line(Label, Value) ->
    fmt("~-13ts ~ts~n", [Label ++ ":", Value]).

opt_line(Label, Key, F, Show) ->
    opt_line(Label, Key, F, Show, []).

opt_line(Label, Key, F, Show, Otherwise) ->
    case maps:get(Key, F, undefined) of
        undefined -> Otherwise;
        V -> [line(Label, Show(V))]
    end.

json_value(V) when is_binary(V); is_integer(V); is_atom(V) -> V;
json_value(V) -> text(V).

text(B) when is_binary(B) -> B;
text(A) when is_atom(A) -> atom_to_binary(A);
text(I) when is_integer(I) -> integer_to_binary(I);
text(L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> B;
        _ -> fmt("~tp", [L])
    end;
text(T) ->
    fmt("~tp", [T]).

get_text(K, F, Default) ->
    case maps:get(K, F, undefined) of
        undefined -> Default;
        V -> text(V)
    end.

fmt(Format, Args) ->
    unicode:characters_to_binary(io_lib:format(Format, Args)).
