%% EUnit tests of emqx_guard_export_problem:find/1 and the words emqx_guard_outcome:format_error/1
%% makes of what it finds, on the terms EMQX really returns (read from EMQX's emqx_mgmt_data_backup and
%% OTP's mnesia_log/erl_tar, and seen from them on a full tmpfs).
-module(emqx_guard_outcome_tests).

-include_lib("eunit/include/eunit.hrl").

-define(DIR, <<"/opt/emqx/data/backup">>).

%% mnesia:backup_checkpoint/2 on a full disk, inside EMQX's `ok = ...' badmatch
mnesia_full() ->
    {export_failed, #{reason =>
        {badmatch,
            {error,
                {'EXIT',
                    {error,
                        {error,
                            {"Tab copier iteration failed",
                                {error, {file_error, "/opt/emqx/data/backup/emqx-export-2026-01-01-00-00-00.000/mnesia/emqx_admin.BUPTMP", enospc}}}}}}}}}}.

export_problem_finds_the_disk_error_however_deep_test_() ->
    [
        ?_assertEqual(
            {file, enospc, <<"/opt/emqx/data/backup/emqx-export-2026-01-01-00-00-00.000/mnesia/emqx_admin.BUPTMP">>},
            emqx_guard_export_problem:find(mnesia_full())
        ),
        %% mnesia cannot even open its file
        ?_assertEqual(
            {file, eacces, <<"/x/mnesia/t.BUPTMP">>},
            emqx_guard_export_problem:find({export_failed, #{reason => {badmatch, {error, {'EXIT', {error, {file_error, "/x/mnesia/t.BUPTMP", eacces}}}}}}})
        ),
        %% erl_tar's error, formatted by EMQX (erl_tar:format_error/1)
        ?_assertEqual(
            {file, enospc, <<"emqx-export-2026-01-01-00-00-00.000/mnesia/emqx_admin">>},
            emqx_guard_export_problem:find(
                {export_failed, #{reason => {badmatch, {error, "emqx-export-2026-01-01-00-00-00.000/mnesia/emqx_admin: no space left on device"}}}}
            )
        ),
        %% the open of the tarball, raised outside EMQX's try
        ?_assertEqual(
            {file, erofs, <<"/opt/emqx/data/backup/emqx-export-2026-01-01-00-00-00.000.tar.gz">>},
            emqx_guard_export_problem:find(
                {export_crashed, #{class => error, reason => {badmatch, {error, "/opt/emqx/data/backup/emqx-export-2026-01-01-00-00-00.000.tar.gz: read-only file system"}}}}
            )
        ),
        %% erl_tar's unformatted pair, a bare atom from erl_tar:close/1, EMQX making its directory
        ?_assertEqual({file, edquot, <<"a/b">>}, emqx_guard_export_problem:find({export_failed, #{reason => {error, {"a/b", edquot}}}})),
        ?_assertEqual({file, enospc, undefined}, emqx_guard_export_problem:find({export_failed, #{reason => {badmatch, {error, enospc}}}})),
        ?_assertEqual({file, eacces, undefined}, emqx_guard_export_problem:find({export_crashed, #{class => error, reason => {badmatch, {error, eacces}}}})),
        %% a call that timed out inside EMQX
        ?_assertEqual(
            {timeout, {gen_server, call}},
            emqx_guard_export_problem:find({export_failed, #{reason => {timeout, {gen_server, call, [mnesia_checkpoint_sup, x, 5000]}}}})
        ),
        ?_assertEqual({timeout, undefined}, emqx_guard_export_problem:find({export_failed, #{reason => {error, timeout}}})),
        %% nothing of the kind: left as it is
        ?_assertEqual(none, emqx_guard_export_problem:find({export_failed, #{reason => table_busy}})),
        ?_assertEqual(none, emqx_guard_export_problem:find({export_failed, #{reason => "mnesia is overloaded"}})),
        ?_assertEqual(none, emqx_guard_export_problem:find({export_failed, #{reason => [a | b]}})),
        ?_assertEqual(none, emqx_guard_export_problem:find({export_failed, #{reason => #{what => <<"odd">>, n => 3}}})),
        %% a file error wins over a timeout next to it
        ?_assertMatch({file, eio, _}, emqx_guard_export_problem:find({x, timeout, {file_error, "p", eio}}))
    ].

export_problem_is_bounded_test() ->
    Deep = lists:foldl(fun(_, Acc) -> {wrap, Acc} end, {file_error, "p", enospc}, lists:seq(1, 100)),
    ?assertEqual(none, emqx_guard_export_problem:find(Deep)).

disk_words_test_() ->
    Full = #{dir => ?DIR, available => 12 * 1024 * 1024, last_size => 47 * 1024 * 1024},
    Line = fun(Posix, Facts) -> emqx_guard_outcome:format_error({export_disk_error, Facts#{posix => Posix, raw => mnesia_full()}}) end,
    [
        ?_assertEqual(
            <<"export failed: no space left on device in /opt/emqx/data/backup (12.0 MiB free once the failed export was removed; "
              "the last backup took about 47.0 MiB)">>,
            Line(enospc, Full)
        ),
        ?_assertEqual(<<"export failed: no space left on device in /opt/emqx/data/backup">>, Line(enospc, #{dir => ?DIR})),
        ?_assertEqual(
            <<"export failed: disk quota exceeded in /opt/emqx/data/backup (the last backup took about 47.0 MiB)">>,
            Line(edquot, Full)
        ),
        ?_assertEqual(
            <<"export failed: permission denied in /opt/emqx/data/backup: EMQX's user must be able to write there">>,
            Line(eacces, #{dir => ?DIR})
        ),
        ?_assertEqual(<<"export failed: /opt/emqx/data/backup is on a read-only file system">>, Line(erofs, #{dir => ?DIR})),
        ?_assertEqual(<<"export failed: input/output error in /opt/emqx/data/backup (the disk may be failing)">>, Line(eio, #{dir => ?DIR})),
        ?_assertEqual(<<"export failed: /opt/emqx/data/backup or a directory in it is missing">>, Line(enoent, #{dir => ?DIR})),
        ?_assertEqual(<<"export failed: file too large in /opt/emqx/data/backup">>, Line(efbig, #{dir => ?DIR})),
        ?_assertEqual(
            <<"export failed: a call inside EMQX timed out (gen_server:call)">>,
            emqx_guard_outcome:format_error({export_call_timeout, #{call => {gen_server, call}, raw => raw}})
        )
    ].
