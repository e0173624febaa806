%% @doc The wording of every notification: the e-mail's subject and body, the webhook's JSON (the
%% facts' document, `document/2', which the `$SYS' events carry too, with the subject and body),
%% and the title, fact lines and restore command the chat channels lay out in their own markup.
%% Pure: everything it shows comes from the facts map. Times, sizes and durations are written
%% by `emqx_guard_render'.
%%
%% Events: `backup_ok', `backup_failed', `dead_man' (no backup succeeded for more than two
%% schedule periods), `offsite_failed' (an off-site job failed; the local backups are fine),
%% `offsite_ok' (off-site copies work again after a failure), `restore_failed' and `restore_done'
%% (a restore ended: `emqx_guard_restore'; `file' the backup restored, `safety' the safety
%% backup taken before it, `step' the step that failed) and `test'. Facts (all optional;
%% what is missing is left out):
%% <ul>
%% <li>`node' (atom or binary), `zone' (IANA name), `trigger' (atom);</li>
%% <li>instants in UTC milliseconds: `started_at' (the run's start), `time' (when a `dead_man'
%%     or `test' message was made), `next_fire', `last_success', `deadline'; `offsets' maps each
%%     of these keys to the zone's UTC offset in seconds at that instant (missing means UTC);</li>
%% <li>`file' (the export's name), `path' (its full path), `size' (bytes), `sha256',
%%     `duration_ms', `error' (why the run or the off-site job failed, one line), `offsite' (an
%%     off-site job's result, `emqx_guard_offsite:result()', shown as one line), `destination'
%%     (where off-site copies go, `s3://bucket/prefix');</li>
%% <li>`kept': the backups now kept, `[#{name, size, mtime}]' newest first.</li>
%% </ul>
-module(emqx_guard_notify_format).

-export([subject/2, title/2, body/2, lines/2, restore/2, webhook/2, document/2, restore_command/1, cut/2]).

-type event() :: backup_ok | backup_failed | dead_man | offsite_failed | offsite_ok | restore_failed | restore_done | test.
-type facts() :: #{atom() => term()}.
-export_type([event/0, facts/0]).

-define(TAG, "[emqx_guard] ").
-define(MAX_REASON, 160).
%% What replaces the end of a text cut to a service's limit.
-define(CUT_MARK, <<"\n… (cut: too long for this channel)"/utf8>>).

%% @doc The e-mail subject: `[emqx_guard] ' and the title.
-spec subject(event(), facts()) -> binary().
subject(Event, F) ->
    <<?TAG, (title(Event, F))/binary>>.

%% @doc One line saying what happened, e.g. `backup OK on emqx@host: emqx-export-...tar.gz (1.5 MiB)'.
-spec title(event(), facts()) -> binary().
title(backup_ok, F) ->
    fmt("backup OK on ~ts: ~ts (~ts)", [node_text(F), get_text(file, F, <<"?">>), size_text(F)]);
title(backup_failed, F) ->
    fmt("backup FAILED on ~ts: ~ts", [node_text(F), short_reason(F)]);
title(dead_man, F) ->
    Since =
        case maps:get(last_success, F, undefined) of
            undefined -> <<"(none recorded)">>;
            _ -> when_text(last_success, F)
        end,
    fmt("backup MISSING on ~ts: none succeeded since ~ts", [node_text(F), Since]);
title(offsite_failed, F) ->
    fmt("off-site copy FAILED on ~ts: ~ts", [node_text(F), short_reason(F)]);
title(offsite_ok, F) ->
    What =
        case maps:get(offsite, F, undefined) of
            #{result := ok} = R -> emqx_guard_offsite:summary(R);
            _ -> <<"up to date">>
        end,
    fmt("off-site copies OK again on ~ts: ~ts", [node_text(F), What]);
title(restore_failed, F) ->
    fmt("restore FAILED on ~ts: ~ts", [node_text(F), short_reason(F)]);
title(restore_done, F) ->
    fmt("restore done on ~ts: ~ts imported", [node_text(F), get_text(file, F, <<"?">>)]);
title(test, F) ->
    fmt("test message from ~ts", [node_text(F)]).

%% @doc The plain-text body: one fact a line, then the kept backups and the restore command.
-spec body(event(), facts()) -> binary().
body(Event, F) ->
    Lines = [fmt("~-13ts ~ts~n", [<<Label/binary, ":">>, indented(Value)]) || {Label, Value} <- lines(Event, F)],
    Kept =
        case maps:get(kept, F, undefined) of
            L when is_list(L) ->
                ["\n", fmt("Backups now kept (~b):~n", [length(L)]), [kept_line(B, F) || B <- L]];
            _ ->
                []
        end,
    Restore =
        case restore(Event, F) of
            undefined ->
                [];
            Command ->
                ["\nTo restore this backup, run on ", node_text(F), " (the file is on that node's disk):\n  ",
                    Command, "\n"]
        end,
    iolist_to_binary([head(Event, F), "\n\n", Lines, Kept, Restore]).

%% @doc The facts as `{Label, Value}' text pairs, in the order every channel shows them.
-spec lines(event(), facts()) -> [{binary(), binary()}].
lines(_Event, F) ->
    Instant =
        case maps:is_key(started_at, F) of
            true -> started_at;
            false -> time
        end,
    [{<<"Node">>, node_text(F)}] ++
        opt(<<"Time">>, Instant, F, fun(_) -> when_text(Instant, F) end) ++
        opt(<<"Trigger">>, trigger, F, fun text/1) ++
        opt(<<"Error">>, error, F, fun text/1) ++
        case opt(<<"File">>, path, F, fun text/1) of
            [] -> opt(<<"File">>, file, F, fun text/1);
            Path -> Path
        end ++
        opt(<<"Size">>, size, F, fun(S) -> fmt("~ts (~b bytes)", [emqx_guard_render:size(S), S]) end) ++
        opt(<<"SHA-256">>, sha256, F, fun text/1) ++
        opt(<<"Safety">>, safety, F, fun text/1) ++
        opt(<<"Failed at">>, step, F, fun text/1) ++
        opt(<<"Destination">>, destination, F, fun text/1) ++
        opt(<<"Off-site">>, offsite, F, fun emqx_guard_offsite:summary/1) ++
        opt(<<"Duration">>, duration_ms, F, fun emqx_guard_render:duration_ms/1) ++
        opt(<<"Last success">>, last_success, F, fun(_) -> when_text(last_success, F) end) ++
        opt(<<"Expected by">>, deadline, F, fun(_) -> when_text(deadline, F) end) ++
        opt(<<"Next backup">>, next_fire, F, fun(_) -> when_text(next_fire, F) end).

%% @doc The command that restores the backup of a `backup_ok', else `undefined'.
-spec restore(atom(), facts()) -> binary() | undefined.
restore(backup_ok, F) ->
    case maps:get(path, F, maps:get(file, F, undefined)) of
        undefined -> undefined;
        P -> restore_command(P)
    end;
restore(_, _) ->
    undefined.

%% @doc The webhook's JSON document: `document/2' with `summary' (the subject, for chat receivers
%% that show one text field) and `text' (the body).
-spec webhook(event(), facts()) -> binary().
webhook(Event, F) ->
    emqx_guard_json:encode((document(Event, F))#{<<"summary">> => subject(Event, F), <<"text">> => body(Event, F)}).

%% @doc The facts of an event as a JSON-ready map (binary keys): `source' (`emqx_guard'),
%% `event', `node' and every fact, instants both as UTC milliseconds (`*_ms') and as ISO 8601
%% text with the zone's offset; the run's start is `time', its error `reason' (the names the
%% webhook's document always had), the kept backups `kept', the command that restores a good
%% backup `restore_command'. Any event, also one without words here: the `$SYS' events
%% (`emqx_guard_events') carry it as their payload.
-spec document(atom(), facts()) -> #{binary() => term()}.
document(Event, F0) ->
    F = json_names(F0),
    Times = maps:from_list(
        lists:append([
            [{atom_to_binary(K), emqx_guard_render:iso8601(V, offset(K, F))}, {<<(atom_to_binary(K))/binary, "_ms">>, V}]
         || K <- [time, next_fire, last_success, deadline],
            V <- [maps:get(K, F, undefined)],
            is_integer(V)
        ])
    ),
    Plain = maps:from_list([
        {atom_to_binary(K), json_value(maps:get(K, F))}
     || K <- [file, path, size, sha256, duration_ms, reason, zone, trigger, destination, safety, step],
        maps:get(K, F, undefined) =/= undefined
    ] ++ [{<<"offsite">>, emqx_guard_offsite:summary(O)} || O <- [maps:get(offsite, F, undefined)], is_map(O)]),
    Kept =
        case maps:get(kept, F, undefined) of
            L when is_list(L) ->
                #{<<"kept">> => [
                    #{<<"name">> => maps:get(name, B, null), <<"size">> => maps:get(size, B, null),
                        <<"mtime_ms">> => maps:get(mtime, B, null)}
                 || B <- L
                ]};
            _ ->
                #{}
        end,
    Restore =
        case restore(Event, F) of
            undefined -> #{};
            Command -> #{<<"restore_command">> => Command}
        end,
    lists:foldl(fun maps:merge/2, #{}, [
        Plain,
        Times,
        Kept,
        Restore,
        #{<<"source">> => <<"emqx_guard">>, <<"event">> => atom_to_binary(Event), <<"node">> => node_text(F)}
    ]).

%% @doc `emqx_ctl data import <Path>', the command that restores a backup.
-spec restore_command(binary() | string()) -> binary().
restore_command(Path) ->
    iolist_to_binary(["emqx_ctl data import ", text(Path)]).

%% @doc Text cut to at most MaxBytes of UTF-8 (never inside a character), its end replaced by a
%% marker saying so; text that fits is returned as it is.
-spec cut(binary(), pos_integer()) -> binary().
cut(Text, MaxBytes) when byte_size(Text) =< MaxBytes ->
    Text;
cut(Text, MaxBytes) ->
    Keep = max(0, MaxBytes - byte_size(?CUT_MARK)),
    <<(whole_chars(binary:part(Text, 0, Keep)))/binary, ?CUT_MARK/binary>>.

%%--------------------------------------------------------------------------------------------

%% A restore that failed at its safety backup changed nothing: EMQX's import never ran.
head(restore_failed, #{step := safety}) ->
    "emqx_guard: a restore FAILED before anything changed: the safety backup could not be taken, so EMQX's import did not run.";
head(Event, _F) ->
    head(Event).

head(backup_ok) -> "emqx_guard: the backup succeeded.";
head(backup_failed) -> "emqx_guard: the backup FAILED. Earlier backups are kept.";
head(dead_man) -> "emqx_guard: no backup has succeeded for more than two schedule periods.";
head(offsite_failed) -> "emqx_guard: an off-site copy FAILED. The backups on this node are fine; the copy is tried again.";
head(offsite_ok) -> "emqx_guard: off-site copies work again.";
head(restore_failed) -> "emqx_guard: a restore FAILED. The safety backup taken before it is kept; the node may hold part of the backup.";
head(restore_done) -> "emqx_guard: a restore is done: EMQX imported the backup (merged into this node's data).";
head(test) -> "emqx_guard: this is a test message; notifications reach you.".

%% The outcome's names as the webhook document has always called them.
json_names(F) ->
    F1 =
        case maps:take(started_at, F) of
            {T, Rest} -> Rest#{time => T, offsets => rename(started_at, time, maps:get(offsets, F, #{}))};
            error -> F
        end,
    case maps:take(error, F1) of
        {E, Rest1} -> Rest1#{reason => E};
        error -> F1
    end.

rename(From, To, M) ->
    case maps:take(From, M) of
        {V, Rest} -> Rest#{To => V};
        error -> M
    end.

%% Drops a trailing partial UTF-8 sequence.
whole_chars(B) ->
    case unicode:characters_to_binary(B) of
        Good when is_binary(Good) -> Good;
        {incomplete, Good, _} -> Good;
        {error, Good, _} -> Good
    end.

when_text(Key, F) ->
    T = emqx_guard_render:instant(maps:get(Key, F), offset(Key, F)),
    case maps:get(zone, F, undefined) of
        undefined -> T;
        Zone -> fmt("~ts (~ts)", [T, text(Zone)])
    end.

offset(Key, F) ->
    maps:get(Key, maps:get(offsets, F, #{}), 0).

kept_line(B, F) ->
    %% a restore's outcome names its step; its file is the backup it restores
    Step = maps:get(step, F, undefined),
    Name = text(maps:get(name, B, <<"?">>)),
    Size =
        case maps:get(size, B, undefined) of
            S when is_integer(S) -> emqx_guard_render:size(S);
            _ -> <<"?">>
        end,
    Mark =
        case {maps:get(file, F, undefined), maps:get(safety, F, undefined)} of
            {_, Name} -> <<"  (safety backup)">>;
            {Name, undefined} when Step =/= undefined -> <<"  (the one to restore)">>;
            {Name, undefined} -> <<"  (this run)">>;
            {Name, _} -> <<"  (restored)">>;
            _ -> <<>>
        end,
    fmt("  ~ts  ~ts~ts~n", [Name, Size, Mark]).

node_text(F) ->
    text(maps:get(node, F, node())).

size_text(F) ->
    case maps:get(size, F, undefined) of
        S when is_integer(S) -> emqx_guard_render:size(S);
        _ -> <<"size unknown">>
    end.

short_reason(F) ->
    R = text(maps:get(error, F, <<"unknown reason">>)),
    One = iolist_to_binary(lists:join(<<" ">>, string:lexemes(R, "\r\n"))),
    case string:length(One) > ?MAX_REASON of
        true -> <<(string:slice(One, 0, ?MAX_REASON - 3))/binary, "...">>;
        false -> One
    end.

%% Continuation lines of a multi-line value line up under its first line.
indented(V) ->
    iolist_to_binary(lists:join(<<"\n              ">>, string:split(V, "\n", all))).

opt(Label, Key, F, Show) ->
    case maps:get(Key, F, undefined) of
        undefined -> [];
        V -> [{Label, Show(V)}]
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
