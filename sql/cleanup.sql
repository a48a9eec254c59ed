-- cleanup: dropping the extension leaves no budgets behind
DROP EXTENSION conngov;
SELECT count(*) FROM pg_class WHERE relname = 'budgets' AND relnamespace::regnamespace::text = 'conngov';
