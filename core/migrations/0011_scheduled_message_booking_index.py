from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

# The visit loop reads a batch's scheduled messages by booking whenever bookings change
# (core.visits.planning); PostgreSQL does not index a foreign key by itself.


class Migration(migrations.Migration):
    dependencies = [('models', '0010_admin_relay_unreachable')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='ScheduledMessage',
            index=Index(fields=['booking_id']),
        ),
    ]
